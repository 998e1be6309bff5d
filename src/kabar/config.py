"""Load `kabar.yaml` (YAML 1.2) into strict pydantic models.

Every problem is reported as `FILE:LINE:COL: dotted.path: message`, all of them in one
run: pydantic's errors and the cross-reference checks (unknown or duplicate ids) are
located through ruamel's line/column records of the parsed document.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from kabar.text import counted

DEFAULT_CONFIG_PATHS = (Path("config/kabar.yaml"), Path("kabar.yaml"))
SUPPORTED_LANGUAGES = ("id", "en")


class ConfigError(Exception):
    """The config file is unreadable or invalid; `problems` holds one line per error."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class MissingSecretError(Exception):
    """A component needs a secret whose environment variable is not set."""


# --- value types -----------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {
    "ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks",
}  # fmt: skip


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration like 500ms, 90s, 10m, 24h, 30d or 2w, got {value!r}")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def parse_window(value: object) -> timedelta | Literal["since_last"]:
    if value == "since_last":
        return "since_last"
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a duration like 24h, or since_last, got {value!r}") from None


def format_duration(value: timedelta) -> str:
    if value.microseconds:
        return f"{value // timedelta(milliseconds=1)}ms"
    seconds = int(value.total_seconds())
    for suffix, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


def check_cron(expression: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"bad cron expression {expression!r}: {exc}") from None
    return expression


def check_env_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def check_identifier(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value):
        raise ValueError(
            f"{value!r} is not a valid id: use lower-case letters, digits, '-' and '_'"
        )
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
Window = Annotated[
    timedelta | Literal["since_last"],
    PlainValidator(parse_window),
    PlainSerializer(lambda v: v if isinstance(v, str) else format_duration(v), return_type=str),
]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
CronExpression = Annotated[str, AfterValidator(check_cron)]
EnvName = Annotated[str, AfterValidator(check_env_name)]
Identifier = Annotated[str, AfterValidator(check_identifier)]
Language = Literal["id", "en"]


_INLINE_PASSWORD = re.compile(r"^[a-z0-9+]+://[^/@]*:[^/@]*@|[?&]password=", re.IGNORECASE)


_PUBLIC_URL = re.compile(r"^https?://[^/\s?#]+(?:[/?#]|$)")
# Query keys that carry a secret in an fsspec or driver URL.
_SECRET_KEY = re.compile(r"[?&](?:password|passwd|secret|token|key)[^=&]*=", re.IGNORECASE)


def public_url(value: str) -> str:
    """An absolute http(s) URL that kabar prints into feeds, mail and pages, so with no
    user or password before the host."""
    if "@" in _authority(value):
        raise ValueError("put no user or password in this URL: feeds, mail and pages show it")
    if not _PUBLIC_URL.match(value):
        raise ValueError(f"expected an absolute http(s) URL, got {value!r}")
    return value.rstrip("/")


def _authority(url: str) -> str:
    return url.partition("://")[2].split("/", 1)[0]


def read_secret(env_name: str, purpose: str) -> str:
    """The value of a secret named in the config; never logged or printed."""
    value = os.environ.get(env_name)
    if not value:
        raise MissingSecretError(
            f"{purpose} needs the environment variable {env_name}, which is not set"
        )
    return value


# --- models ----------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Site(Strict):
    title: str
    url: str
    language: Language = "id"
    timezone: TimeZoneName = "Asia/Jakarta"
    description: str = ""
    logo_url: str = ""
    contact: str = ""

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        return public_url(value)


class Storage(Strict):
    database: str = "sqlite:///var/kabar.db"
    password_env: EnvName | None = None
    feeds: str = "public/"
    # Where readers fetch what is in `feeds`; default: web.base_url (or site.url) + /feeds.
    feeds_url: str | None = None

    @field_validator("feeds_url")
    @classmethod
    def _absolute_feeds_url(cls, value: str | None) -> str | None:
        return None if value is None else public_url(value)

    @field_validator("feeds")
    @classmethod
    def _no_secret_in_feeds(cls, value: str) -> str:
        if _SECRET_KEY.search(value) or "@" in _authority(value):
            raise ValueError("put the storage's credentials in its environment, not the URL")
        return value

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if _INLINE_PASSWORD.search(value):
            raise ValueError("put the database password in an env var named by password_env")
        try:
            parsed = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL: expected one such as sqlite:///var/kabar.db or "
                "postgresql+psycopg://kabar@db/kabar"
            ) from None
        if any(key.lower() == "password" for key in parsed.query):  # ?pass%77ord=
            raise ValueError("put the database password in an env var named by password_env")
        return value


class CronSchedule(Strict):
    cron: CronExpression
    timezone: TimeZoneName | None = None
    catch_up: Literal["latest", "all", "skip"] = "latest"
    max_lateness: Duration = timedelta(hours=6)


class IntervalSchedule(Strict):
    every: Duration


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, CronSchedule | IntervalSchedule):
        return "cron-schedule" if isinstance(value, CronSchedule) else "interval-schedule"
    if isinstance(value, dict):
        if "cron" in value:
            return "cron-schedule"
        return "interval-schedule" if "every" in value else None
    return None


# A tagged union, so a mistake gives one error instead of one per member.
Schedule = Annotated[
    Annotated[CronSchedule, Tag("cron-schedule")]
    | Annotated[IntervalSchedule, Tag("interval-schedule")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="a schedule needs either 'cron' or 'every'",
    ),
]


class SourceBase(Strict):
    id: Identifier
    language: Language | None = None
    section: str = ""
    every: Duration | None = None


class PagesSource(SourceBase):
    """Article pages in the seed format (title, Indonesian date line, body, byline)."""

    kind: Literal["pages"]
    path: str
    base_url: str | None = None


class JsonSource(SourceBase):
    """JSON or JSON Lines files, one article per object."""

    kind: Literal["json"]
    path: str


class FeedSource(SourceBase):
    """An RSS, Atom or JSON feed, from a file or an http(s) URL."""

    kind: Literal["feed"]
    url: str
    # The whole fetch must end within this (ingest.fetch_deadline when unset).
    fetch_deadline: Duration | None = None


class Ingest(Strict):
    fetch_deadline: Duration = timedelta(seconds=60)


Source = Annotated[PagesSource | JsonSource | FeedSource, Field(discriminator="kind")]


class Feed(Strict):
    id: Identifier
    title: str
    description: str = ""
    sources: list[Identifier] | None = None
    formats: list[Literal["rss", "atom", "json"]] = ["rss", "atom", "json"]
    limit: int = Field(default=50, ge=1, le=1000)
    split_by: Literal["section", "tag", "author"] | None = None
    sections: list[str] = []
    tags: list[str] = []
    path: str | None = None
    archive: bool = True  # history beyond `limit` in RFC 5005 archive pages
    schedule: Schedule | None = None

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is not None and (not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", value)):
            raise ValueError(
                f"{value!r} is not a feed path: use folder/name with letters, digits, "
                "'-' and '_', without a suffix (kabar adds .rss.xml, .atom.xml, .json)"
            )
        return value


class MailingList(Strict):
    id: Identifier
    name: str = ""
    from_: str = Field(alias="from")
    reply_to: str | None = None
    double_opt_in: bool = True
    locale: Language | None = None
    # A CSV of subscribers imported (new addresses only) before each publish and send.
    import_from: str | None = None
    # Mail a welcome (templates/welcome.txt.j2, or the admin's) once confirmed.
    welcome: bool = False
    welcome_template: str | None = None


class Related(Strict):
    per_item: int = Field(default=3, ge=0, le=10)
    min_items: int | None = Field(default=None, ge=0, le=10)
    min_score: float = Field(default=0.14, ge=0, le=1)
    window: Duration = timedelta(days=30)
    half_life: Duration = timedelta(days=30)
    # A block the engine can't fill: with the newest articles of the article's section
    # within the window ("section"), or none at all, "3 or nothing" ("none").
    fill: Literal["section", "none"] = "section"

    @model_validator(mode="after")
    def _min_items_fits(self) -> Related:
        if self.min_items is not None and self.min_items > self.per_item:
            raise ValueError(
                f"min_items ({self.min_items}) is more than per_item ({self.per_item}): "
                "no block could ever be shown"
            )
        return self


class DigestTemplates(Strict):
    # Paths to the admin's own templates; the bundled ones are used for any left out.
    html: str | None = None
    text: str | None = None
    archive: str | None = None
    archive_index: str | None = None
    # Web fonts, name -> stylesheet URL. None by default: each is a remote request the
    # mail client makes, and Gmail and Outlook ignore them anyway.
    fonts: dict[str, str] = {}
    accent_color: str = Field(default="#b4161b", pattern=r"^#[0-9a-fA-F]{6}$")


# What a digest's subject and preheader may fill in (kabar.digest fills them).
TEXT_FIELDS = ("date", "headline", "count", "site")
_TEXT_FIELD = re.compile(r"\{(\w+)\}")


def _braced(fields: Sequence[str]) -> str:
    return ", ".join("{" + field + "}" for field in fields)


class Digest(Strict):
    id: Identifier
    list_id: Identifier = Field(alias="list")
    sources: list[Identifier] | None = None
    # One text, or one per language ({id: "Kabar pagi, {date}", en: "Morning news, {date}"}).
    subject: str | dict[Language, str]
    preheader: str | dict[Language, str] = ""
    window: Window = timedelta(hours=24)
    sections: list[str] = []
    tags: list[str] = []
    order: Literal["newest", "priority"] = "newest"
    max_items: int = Field(default=12, ge=1, le=50)
    related: Related = Related()
    skip_if_empty: bool = True
    # False: an issue leaves out articles an earlier issue of this digest to the list carried
    repeat_articles: bool = False
    locale: Language | None = None
    templates: DigestTemplates = DigestTemplates()
    schedule: Schedule | None = None

    @field_validator("subject", "preheader")
    @classmethod
    def _some_language(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict) and not value:
            raise ValueError("give a text, or one per language such as {id: …, en: …}")
        texts = [value] if isinstance(value, str) else list(value.values())
        named = {field for text in texts for field in _TEXT_FIELD.findall(text)}
        unknown = sorted(named - set(TEXT_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {_braced(unknown)}: use {_braced(TEXT_FIELDS)}")
        return value

    def text(self, name: Literal["subject", "preheader"], language: str) -> str:
        """The subject or preheader in `language`; one not given in it falls back to the
        digest's locale, then to the first given."""
        value: str | dict[str, str] = getattr(self, name)
        if isinstance(value, str):
            return value
        for wanted in (language, self.locale):
            if wanted in value:
                return value[wanted]
        return next(iter(value.values()))

    @model_validator(mode="after")
    def _priority_needs_ranking(self) -> Digest:
        if self.order == "priority" and not (self.sections or self.tags):
            raise ValueError(
                "order: priority ranks articles by the listed sections and tags; "
                "list some, or use order: newest"
            )
        return self


class Smtp(Strict):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password_env: EnvName | None = None
    connections: int = Field(default=4, ge=1, le=64)
    recycle_after: int = Field(default=500, ge=1)
    rate_per_second: float = Field(default=50, gt=0)
    timeout: Duration = timedelta(seconds=60)  # hard limit per message, not per socket read
    max_attempts: int = Field(default=5, ge=1, le=20)
    ca_file: str | None = None  # trust this CA bundle (a relay with a private CA)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> Smtp:
        if self.tls and self.starttls:
            raise ValueError("choose either tls (implicit, port 465) or starttls, not both")
        return self


class Dkim(Strict):
    domain: str
    selector: str
    key_env: EnvName


class Delivery(Strict):
    transport: Literal["outbox", "smtp"] = "outbox"
    outbox: str = "outbox/"
    smtp: Smtp = Smtp()
    dkim: Dkim | None = None
    feedback_id: str | None = None
    chunk_size: int = Field(default=500, ge=1)
    # A claimed delivery is retried by another sender once its lease runs out.
    lease: Duration = Field(default=timedelta(seconds=60), gt=timedelta(0))
    # The first retry waits this long, each next one twice as long (with jitter).
    retry_backoff: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    retry_backoff_max: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))


class SubscribeLimits(Strict):
    """How often the subscribe form may be used, so it cannot mail-bomb anyone."""

    per_address: int = Field(default=3, ge=1, le=1000)  # confirmation mails to one address
    address_window: Duration = Field(default=timedelta(hours=24), gt=timedelta(0))
    per_ip: int = Field(default=20, ge=1, le=1_000_000)  # POST /subscribe from one client
    ip_window: Duration = Field(default=timedelta(minutes=10), gt=timedelta(0))


def web_origin(url: str) -> str:
    """`scheme://host[:port]` of an http(s) URL, lower-case, default port left out."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {url!r}")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


class Web(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    base_url: str | None = None
    secret_env: EnvName = "KABAR_SECRET"  # noqa: S105 - the variable's name, not a secret
    websub_hub: str | None = None
    # Pages besides web.base_url that may post to /subscribe (an embedded form's site).
    allowed_origins: list[str] = []
    # Proxies whose X-Forwarded-For names the client (IPs or CIDRs); others are not trusted.
    trusted_proxies: list[str] = []
    subscribe_limits: SubscribeLimits = SubscribeLimits()

    @field_validator("base_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        return None if value is None else public_url(value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [web_origin(origin) for origin in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {network!r}") from None
        return value


def _with_password(url: str, password_env: str | None, purpose: str) -> str:
    """The URL with the password from its env var put in, for connecting only."""
    if not password_env:
        return url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    password = quote(read_secret(password_env, purpose), safe="")
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


class Engine(Strict):
    """Where chunks of deliveries run: in the sending process (embedded), or in `kabar
    worker` processes fed through a Dramatiq broker."""

    mode: Literal["embedded", "dramatiq"] = "embedded"
    broker_url: str | None = None  # redis://host:6379/0 or amqp://user@host:5672/
    broker_password_env: EnvName | None = None
    # The Redis all workers share the SMTP rate limit through; default: a redis broker_url.
    limiter_url: str | None = None
    limiter_password_env: EnvName | None = None
    queue: str = Field(default="kabar", pattern=r"^[A-Za-z0-9_.-]+$")
    # When no delivery of an issue has been recorded for this long, its chunks with work
    # left are queued again: their messages went down with a worker, or the broker lost them.
    resubmit_after: Duration = Field(default=timedelta(minutes=2), gt=timedelta(0))

    @field_validator("broker_url", "limiter_url")
    @classmethod
    def _known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        schemes: tuple[str, ...] = ("redis", "rediss", "amqp", "amqps")
        if info.field_name == "limiter_url":
            schemes = ("redis", "rediss")
        if value.partition("://")[0] not in schemes:
            raise ValueError(f"expected a {' or '.join(s + '://' for s in schemes)} URL")
        if _INLINE_PASSWORD.search(value):
            name = str(info.field_name).removesuffix("_url")
            raise ValueError(f"put the password in an env var named by {name}_password_env")
        return value

    @property
    def broker(self) -> str:
        assert self.broker_url is not None
        return _with_password(self.broker_url, self.broker_password_env, "the broker")

    @property
    def limiter(self) -> str | None:
        """The Redis URL of the shared rate limit, password included, if there is one."""
        if self.limiter_url:
            return _with_password(self.limiter_url, self.limiter_password_env, "the rate limit")
        if self.broker_url and self.broker_url.startswith("redis"):
            return self.broker
        return None


# --- operations: metrics, the HTTP API, webhooks out --------------------------------------


class Metrics(Strict):
    """The Prometheus port of `kabar run` and `kabar worker` (`kabar serve` has /metrics)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)


class Api(Strict):
    """The CMS's HTTP API under /api/v1 of `kabar serve`."""

    rate_limit: int = Field(default=600, ge=1, le=1_000_000)  # requests per token per window
    rate_window: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    max_articles: int = Field(default=1000, ge=1, le=10_000)  # per request
    # Feed rebuilds after API posts wait this long for more posts, then run once.
    rebuild_delay: Duration = Field(default=timedelta(seconds=1), ge=timedelta(0))


WebhookEvent = Literal[
    "subscriber.created", "subscriber.confirmed", "subscriber.unsubscribed",
    "subscriber.bounced", "subscriber.complained", "issue.started", "issue.finished",
    "feed.updated",
]  # fmt: skip


class WebhookEndpoint(Strict):
    id: Identifier
    url: str = Field(pattern=r"^https?://")
    secret_env: EnvName  # holds a Standard Webhooks secret: whsec_ and base64
    events: list[WebhookEvent] = Field(min_length=1)
    timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))


class Webhooks(Strict):
    endpoints: list[WebhookEndpoint] = []
    retry_backoff: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    retry_backoff_max: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    # An endpoint that has failed every attempt for this long is disabled (and reported).
    disable_after: Duration = Field(default=timedelta(days=1), gt=timedelta(0))


# --- what comes back (kabar.inbound) ---------------------------------------------------

_ADDRESS_PATTERN = re.compile(r"^[A-Za-z0-9._+-]*\{token\}[A-Za-z0-9._+-]*@[A-Za-z0-9.-]+$")


def check_address_pattern(value: str) -> str:
    if not _ADDRESS_PATTERN.fullmatch(value):
        raise ValueError(
            f"expected an address with {{token}} in its local part, such as "
            f"bounces+{{token}}@bounce.example.id, got {value!r}"
        )
    return value


AddressPattern = Annotated[str, AfterValidator(check_address_pattern)]


class Mailbox(Strict):
    """Where the bounce address's mail lands: a Maildir a local MTA writes, or IMAP."""

    kind: Literal["maildir", "imap"]
    path: str | None = None  # maildir
    host: str | None = None  # imap, TLS from the first byte (imaps)
    port: int = Field(default=993, ge=1, le=65535)
    username: str | None = None
    password_env: EnvName | None = None
    ca_file: str | None = None  # trust this CA bundle (a private server's)
    folder: str = "INBOX"
    done_folder: str = "kabar-done"
    unrecognised_folder: str = "kabar-unrecognised"
    every: Duration = Field(default=timedelta(minutes=5), gt=timedelta(0))  # `kabar run` polls

    @model_validator(mode="after")
    def _complete(self) -> Mailbox:
        if self.kind == "maildir" and not self.path:
            raise ValueError("a maildir mailbox needs `path`")
        if self.kind == "imap" and not (self.host and self.username and self.password_env):
            raise ValueError("an imap mailbox needs `host`, `username` and `password_env`")
        return self


class BouncePolicy(Strict):
    """How what comes back changes subscribers (listmonk's and the big senders' defaults)."""

    soft_limit: int = Field(default=3, ge=1, le=100)  # soft bounces in the window → bounced
    soft_window: Duration = Field(default=timedelta(days=14), gt=timedelta(0))
    # An issue pauses when hard bounces among its first `breaker_sample` deliveries pass
    # this share of them: a bad import shows itself before it ruins the sender's name.
    breaker_share: float = Field(default=0.05, gt=0, le=1)
    breaker_sample: int = Field(default=1000, ge=10)
    # ... and only once this many have bounced: one stale address on a small list is not
    # a bad import.
    breaker_minimum: int = Field(default=10, ge=1)


class BounceWebhooks(Strict):
    """Relays that report by HTTP POST to `kabar serve`; each is on when its secret is named."""

    ses: bool = False  # Amazon SES via SNS: checked against SNS's signing certificate
    ses_topics: list[str] = []  # accept only these TopicArns (empty: any)
    mailgun_key_env: EnvName | None = None  # Mailgun's HTTP webhook signing key
    postmark_username: str = "kabar"
    postmark_password_env: EnvName | None = None  # basic auth on the webhook URL
    generic_secret_env: EnvName | None = None  # HMAC-SHA256 of the body, for any relay


class Bounces(Strict):
    # The envelope sender of each delivery (VERP): {token} names the delivery, signed.
    address: AddressPattern | None = None
    # The mailto: unsubscribe address in List-Unsubscribe, beside the one-click https link.
    unsubscribe_address: AddressPattern | None = None
    mailbox: Mailbox | None = None
    policy: BouncePolicy = BouncePolicy()
    webhooks: BounceWebhooks = BounceWebhooks()


class Config(Strict):
    version: Literal[1]
    root: str = "."
    site: Site
    storage: Storage = Storage()
    sources: list[Source] = []
    ingest: Ingest = Ingest()
    feeds: list[Feed] = []
    lists: list[MailingList] = []
    digests: list[Digest] = []
    delivery: Delivery = Delivery()
    web: Web = Web()
    engine: Engine = Engine()
    related: Related = Related()
    metrics: Metrics = Metrics()
    api: Api = Api()
    webhooks: Webhooks = Webhooks()
    bounces: Bounces = Bounces()
    # Folders outside `root` that digest templates may also come from.
    template_dirs: list[str] = []

    # Set by `load`, not by the file.
    path: Path = Field(default=Path("kabar.yaml"), exclude=True)

    @property
    def root_dir(self) -> Path:
        return (self.path.parent / self.root).resolve()

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to `root` (itself relative to the file)."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.root_dir / candidate

    def resolve_url(self, location: str) -> str:
        """Like `resolve`, but leaves fsspec URLs (s3://…, memory://…) alone."""
        if "://" in location:
            return location
        return str(self.resolve(location))

    @property
    def database_url(self) -> str:
        url = self.storage.database
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                return f"sqlite:///{self.resolve(relative)}"
        if self.storage.password_env:
            from sqlalchemy.engine import make_url

            password = read_secret(self.storage.password_env, "the database")
            return make_url(url).set(password=password).render_as_string(hide_password=False)
        return url

    def source(self, source_id: str) -> PagesSource | JsonSource | FeedSource:
        return next(s for s in self.sources if s.id == source_id)

    def digest(self, digest_id: str) -> Digest:
        return next(d for d in self.digests if d.id == digest_id)

    def mailing_list(self, list_id: str) -> MailingList:
        return next(m for m in self.lists if m.id == list_id)


# --- locating errors -------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    loc: tuple[str | int, ...]
    message: str
    at_key: bool = False  # point at the key (unknown keys), not its value


def _position(root: Any, loc: Sequence[str | int], at_key: bool) -> tuple[int, int, str]:
    """Line and column (1-based) of `loc` in the parsed document, and its dotted path.

    Elements of `loc` that the document lacks (pydantic's union tags such as
    `pages` or `function-after[…]`) are skipped; a missing last key points at its parent.
    """
    node, line, col = root, 0, 0
    path: list[str] = []
    for index, part in enumerate(loc):
        is_last = index == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            key_line, key_col = node.lc.key(part)
            value_line, value_col = node.lc.value(part)
            line, col = (key_line, key_col) if (is_last and at_key) else (value_line, value_col)
            node = node[part]
            path.append(str(part))
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
            path.append(str(part))
        elif is_last and isinstance(node, CommentedMap):
            line, col = node.lc.line, node.lc.col
            path.append(str(part))
    return line + 1, col + 1, ".".join(path) or "(top)"


def _pydantic_problems(error: ValidationError, raw: Any) -> Iterator[Problem]:
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            parent = _lookup(raw, loc[:-1])
            known = _field_names_at(loc[:-1], parent)
            message = f"unknown key {loc[-1]!r}" + _did_you_mean(str(loc[-1]), known)
            yield Problem(loc, message, at_key=True)
        elif item["type"] == "missing":
            yield Problem(loc, f"required key {loc[-1]!r} is missing")
        elif item["type"] == "union_tag_invalid":
            ctx = item.get("ctx", {})
            message = f"unknown kind {ctx.get('tag')!r} (expected {ctx.get('expected_tags')})"
            yield Problem((*loc, "kind"), message)
        else:
            yield Problem(loc, message)


def _lookup(root: Any, loc: Sequence[str | int]) -> Any:
    node = root
    for part in loc:
        if isinstance(node, dict | list):
            try:
                node = node[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                continue
    return node


def _field_names_at(loc: Sequence[str | int], node: Any) -> list[str]:
    """The keys a model accepts at `loc`, for "did you mean" hints."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            model = _SOURCE_KINDS.get(str(node.get("kind"))) if isinstance(node, dict) else None
            continue
        model = _model_in(field.annotation)
    if model is None or not hasattr(model, "model_fields"):
        return []
    return [f.alias or name for name, f in model.model_fields.items() if name != "path"]


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `list[Model]`, `Model | None` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_SOURCE_KINDS: dict[str, type[BaseModel]] = {
    "pages": PagesSource,
    "json": JsonSource,
    "feed": FeedSource,
}


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _reference_problems(raw: Any) -> Iterator[Problem]:
    """Unknown and duplicate ids, checked on the raw document so they are reported even
    when other parts of the file fail validation."""
    if not isinstance(raw, dict):
        return
    defined: dict[str, set[str]] = {}
    for section in ("sources", "feeds", "lists", "digests"):
        seen: set[str] = set()
        items = raw.get(section)
        for index, item in enumerate(items if isinstance(items, list) else []):
            item_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item_id, str):
                continue
            if item_id in seen:
                yield Problem((section, index, "id"), f"duplicate {section[:-1]} id {item_id!r}")
            seen.add(item_id)
        defined[section] = seen

    def check(loc: tuple[str | int, ...], value: Any, kind: str) -> Iterator[Problem]:
        if isinstance(value, str) and value not in defined[kind]:
            what = {"sources": "source", "lists": "list"}[kind]
            hint = _did_you_mean(value, sorted(defined[kind]))
            yield Problem(loc, f"unknown {what} id {value!r}{hint}")

    for section in ("feeds", "digests"):
        items = raw.get(section)
        for index, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            sources = item.get("sources")
            for n, source_id in enumerate(sources if isinstance(sources, list) else []):
                yield from check((section, index, "sources", n), source_id, "sources")
            if section == "digests":
                yield from check((section, index, "list"), item.get("list"), "lists")


def _engine_problems(raw: Any) -> Iterator[Problem]:
    engine = raw.get("engine") if isinstance(raw, dict) else None
    storage = raw.get("storage") if isinstance(raw, dict) else None
    if not isinstance(engine, dict) or engine.get("mode") != "dramatiq":
        return
    database = storage.get("database", "sqlite:") if isinstance(storage, dict) else "sqlite:"
    if str(database).startswith("sqlite"):
        yield Problem(
            ("engine", "mode"),
            "dramatiq mode needs PostgreSQL: workers on several machines claim deliveries "
            "with SELECT … FOR UPDATE SKIP LOCKED, which SQLite cannot share",
        )
    broker = str(engine.get("broker_url") or "")
    if not broker:
        yield Problem(
            ("engine", "broker_url"), "dramatiq mode needs a broker_url (redis:// or amqp://)"
        )
    delivery = raw.get("delivery")
    smtp = isinstance(delivery, dict) and delivery.get("transport") == "smtp"
    if smtp and broker.startswith("amqp") and not engine.get("limiter_url"):
        yield Problem(
            ("engine", "broker_url"),
            "the workers share the SMTP rate limit through Redis: with an amqp broker, "
            "set engine.limiter_url to a redis:// URL",
        )


# --- loading ---------------------------------------------------------------------------


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("KABAR_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_CONFIG_PATHS[0]


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a device or a pipe is no config


def _read_config(path: Path) -> str:
    if path.exists() and not path.is_file():
        raise ConfigError([f"{path}: not a regular file: give the config's YAML file"])
    with path.open("rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: over {MAX_CONFIG_BYTES >> 20} MiB: not a config file"])
    return data.decode("utf-8")


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Parse and validate the config; raise ConfigError listing every problem."""
    config_path = find_config(path)
    try:
        text = _read_config(config_path)
    except OSError as exc:
        raise ConfigError([f"{config_path}: cannot read config: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{config_path}: config is not UTF-8: {exc.reason}"]) from None
    raw = _parse_yaml(config_path, text)

    problems: list[Problem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, raw))
    problems.extend(_reference_problems(raw))
    problems.extend(_engine_problems(raw))
    if config is not None:
        config = config.model_copy(update={"path": config_path.resolve()})
        problems.extend(_template_problems(config))
    if problems:
        raise ConfigError(_format_problems(config_path, raw, problems))
    assert config is not None
    return config


_TEMPLATE_KEYS = ("html", "text", "archive", "archive_index")


def _template_problems(config: Config) -> Iterator[Problem]:
    """Templates run with the renderer's rights and their output goes to every subscriber,
    so they come only from the project root or a folder named in template_dirs; links are
    followed before the check, so one cannot point elsewhere."""
    allowed = [config.root_dir, *(config.resolve(d).resolve() for d in config.template_dirs)]
    for index, digest in enumerate(config.digests):
        for key in _TEMPLATE_KEYS:
            value = getattr(digest.templates, key)
            if value is None:
                continue
            target = config.resolve(value).resolve()
            if not any(target.is_relative_to(folder) for folder in allowed):
                places = ", ".join(str(folder) for folder in allowed)
                yield Problem(
                    ("digests", index, "templates", key),
                    f"template {value!r} is outside the project root and template_dirs ({places})",
                )


def _parse_yaml(path: Path, text: str) -> Any:
    yaml = YAML(typ="rt")  # round-trip keeps line/column records; YAML 1.2 by default
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(exc.problem or exc.context or "malformed YAML").split())
        raise ConfigError([f"{path}:{line}:{col}: (yaml): {problem}"]) from None


def _format_problems(path: Path, raw: Any, problems: list[Problem]) -> list[str]:
    lines = []
    for problem in problems:
        line, col, dotted = _position(raw, problem.loc, problem.at_key)
        lines.append((line, col, f"{path}:{line}:{col}: {dotted}: {problem.message}"))
    lines.sort(key=lambda entry: (entry[0], entry[1]))
    return list(dict.fromkeys(text for _, _, text in lines))


def located(config: Config, loc: Sequence[str | int], message: str) -> str:
    """`FILE:LINE:COL: dotted.path: message` for a place in a loaded config's file."""
    raw = _parse_yaml(config.path, config.path.read_text(encoding="utf-8"))
    line, col, dotted = _position(raw, loc, False)
    return f"{config.path}:{line}:{col}: {dotted}: {message}"


def summary(config: Config) -> str:
    counts = ", ".join(
        counted(len(parts), name)
        for parts, name in (
            (config.sources, "source"), (config.feeds, "feed"), (config.lists, "list"),
            (config.digests, "digest"),
        )
    )  # fmt: skip
    return f"{config.path}: ok: {counts}, delivery by {config.delivery.transport}" + (
        " through dramatiq workers" if config.engine.mode == "dramatiq" else ""
    )
