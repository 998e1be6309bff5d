"""Subscribers of mailing lists, and the signed links that let them leave or confirm.

A subscriber is one address on one list: the same address on two lists is two rows with
two ids, so each list has its own unsubscribe token. Ids are random, and tokens are an
HMAC of the id, so links cannot be guessed or enumerated.

Statuses: pending (double opt-in, not yet confirmed), active, unsubscribed, bounced
(a 5.1.x reply, or a DSN read later: kabar.inbound), complained (a spam report). Only
active subscribers receive issues; no address on the suppression list is ever added.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, or_, select, update

from kabar.addresses import InvalidAddress, normalise_address
from kabar.config import SUPPORTED_LANGUAGES, Config, MissingSecretError, read_secret
from kabar.hooks.events import STATUS_EVENTS, record_event, subscriber_data
from kabar.model import Recipient
from kabar.store.tables import forgotten, settings, subscribers, suppressions
from kabar.suppression import Suppressions
from kabar.urls import Urls

log = logging.getLogger(__name__)

Status = Literal["pending", "active", "unsubscribed", "bounced", "complained"]
STATUSES: tuple[Status, ...] = ("pending", "active", "unsubscribed", "bounced", "complained")
LEFT: tuple[Status, ...] = ("unsubscribed", "bounced", "complained")  # only they can undo it
_BATCH = 1000


class SuppressedAddress(ValueError):
    """An address on the suppression list (kabar.suppression): never added to a list."""


@dataclass(frozen=True)
class Subscriber:
    id: str
    list_id: str
    email: str
    name: str = ""
    locale: str = ""
    status: Status = "active"
    origin: str = "cli"
    created: datetime | None = None
    updated: datetime | None = None
    sections: tuple[str, ...] = ()  # the sections they want; () for all
    digests: tuple[str, ...] = ()  # the list's digests they receive; () for all
    consent: dict[str, Any] | None = None  # how it came and was confirmed (kabar.consent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "list": self.list_id, "email": self.email, "name": self.name,
            "locale": self.locale, "status": self.status, "origin": self.origin,
            "created": self.created.isoformat() if self.created else None,
            "updated": self.updated.isoformat() if self.updated else None,
            "sections": list(self.sections), "digests": list(self.digests),
        }  # fmt: skip

    def receives(self, digest_id: str) -> bool:
        return not self.digests or digest_id in self.digests


def normalise_locale(text: str) -> str:
    """'' (the list's default), or a supported language; 'id-ID' and 'EN_us' are accepted."""
    language = text.strip().replace("_", "-").split("-")[0].lower()
    if language and language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unknown locale {text!r} (expected {' or '.join(SUPPORTED_LANGUAGES)})")
    return language


def _key(address: str) -> str:
    return address.lower()


def address_hash(address: str) -> str:
    """What is kept of a forgotten address: enough to recognise it, nothing to read."""
    return hashlib.sha256(_key(address.strip()).encode()).hexdigest()


def choice_key(values: Iterable[str]) -> str:
    """How a set of sections (or digests) is stored: a sorted JSON list, "" for none, so
    equal choices compare equal in SQL and an issue renders each distinct one once."""
    chosen = sorted({" ".join(value.split()) for value in values} - {""})
    return json.dumps(chosen, ensure_ascii=False) if chosen else ""


def parse_choice(stored: str | None) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else ()


def new_id() -> str:
    return secrets.token_hex(8)


# --- import ------------------------------------------------------------------------------


@dataclass
class ImportReport:
    path: str
    list_id: str
    imported: int = 0
    rejected: list[str] = field(default_factory=list)
    existing: int = 0  # of the rejected rows, those already on the list
    # Of those, the addresses that left (unsubscribed, bounced, complained): an import never
    # brings them back, only their owner can, through the subscribe form's confirmation.
    left: list[str] = field(default_factory=list)

    def describe(self) -> str:
        kept_out = f" ({len(self.left)} of them left the list and stay off it)" if self.left else ""
        return (
            f"{self.path}: {self.imported} imported to list {self.list_id}, "
            f"{len(self.rejected)} rejected{kept_out}"
        )


@dataclass(frozen=True)
class _Row:
    line: int
    email: str
    name: str
    locale: str


def read_csv(path: Path, report: ImportReport) -> Iterator[_Row]:
    """Rows of a subscriber CSV: a header naming `email` (and `name`, `locale`), or
    columns email, name, locale without one. Invalid rows go to `report.rejected`."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        columns = {"email": 0, "name": 1, "locale": 2}
        for row in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            lowered = [cell.lower() for cell in cells]
            if line == 1 and "email" in lowered:
                columns = {name: lowered.index(name) for name in columns if name in lowered}
                continue
            parsed = _parse_row(line, cells, columns)
            if isinstance(parsed, str):
                report.rejected.append(f"{path}:{line}: {parsed}")
            else:
                yield parsed


def _parse_row(line: int, cells: list[str], columns: dict[str, int]) -> _Row | str:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    raw = cell("email")
    if not raw:
        return "no address"
    name, address = parseaddr(raw) if "<" in raw else ("", raw)
    try:
        email = normalise_address(address)
    except InvalidAddress as exc:
        return f"invalid address {raw!r}: {exc}"
    try:
        locale = normalise_locale(cell("locale"))
    except ValueError as exc:
        return f"{raw}: {exc}"
    return _Row(line, email, cell("name") or name, locale)


# --- the store -----------------------------------------------------------------------------


class Subscribers:
    """Subscriber rows in kabar's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        list_id: str,
        email: str,
        *,
        name: str = "",
        locale: str = "",
        status: Status = "active",
        origin: str = "cli",
        now: datetime | None = None,
        sections: Iterable[str] = (),
        digests: Iterable[str] = (),
        consent: dict[str, Any] | None = None,
    ) -> tuple[Subscriber, bool]:
        """Add an address (validated); if it is already on the list, return the stored
        subscriber unchanged and False."""
        address = normalise_address(email)
        existing = self.find(list_id, address)
        if existing is not None:
            return existing, False
        if Suppressions(self.engine).is_suppressed(address):
            raise SuppressedAddress(f"{address} is on the suppression list")
        moment = now or datetime.now(UTC)
        subscriber = Subscriber(
            new_id(), list_id, address, name.strip(), normalise_locale(locale), status, origin,
            moment, moment, parse_choice(choice_key(sections)), parse_choice(choice_key(digests)),
            consent,
        )  # fmt: skip
        with self.engine.begin() as connection:
            connection.execute(insert(subscribers).values(_to_row(subscriber)))
            _tell(connection, "subscriber.created", _to_row(subscriber), moment)
        return subscriber, True

    def import_csv(
        self, path: Path, list_id: str, *, status: Status = "active", now: datetime | None = None
    ) -> ImportReport:
        """Import new addresses from a CSV; existing subscribers (including those who left)
        are never changed. Each rejected row is reported with its line and reason."""
        report = ImportReport(str(path), list_id)
        moment = now or datetime.now(UTC)
        seen: dict[str, int] = {}
        batch: list[_Row] = []
        for row in read_csv(path, report):
            first = seen.setdefault(_key(row.email), row.line)
            if first != row.line:
                report.rejected.append(f"{path}:{row.line}: duplicate of line {first}: {row.email}")
                continue
            batch.append(row)
            if len(batch) >= _BATCH:
                self._import_batch(batch, list_id, status, moment, report)
                batch = []
        if batch:
            self._import_batch(batch, list_id, status, moment, report)
        return report

    def _import_batch(
        self,
        batch: Sequence[_Row],
        list_id: str,
        status: Status,
        now: datetime,
        report: ImportReport,
    ) -> None:
        keys = [_key(row.email) for row in batch]
        hashes = {address_hash(row.email): row for row in batch}
        consent = {"origin": "import", "at": now.isoformat(), "source": report.path}
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(subscribers.c.email_key, subscribers.c.status).where(
                    subscribers.c.list_id == list_id, subscribers.c.email_key.in_(keys)
                )
            )
            stored = {key: state for key, state in rows}
            gone = set(
                connection.execute(
                    select(forgotten.c.email_hash).where(forgotten.c.email_hash.in_(list(hashes)))
                ).scalars()
            )
            suppressed = _suppressed_keys(connection, keys)
            fresh = []
            for row in batch:
                if address_hash(row.email) in gone:
                    report.rejected.append(
                        f"{report.path}:{row.line}: an address whose owner asked to be "
                        "forgotten: not imported (they can subscribe again themselves)"
                    )
                    continue
                state = stored.get(_key(row.email))
                if _key(row.email) in suppressed:
                    report.rejected.append(
                        f"{report.path}:{row.line}: {row.email} is on the suppression list"
                    )
                    continue
                if state in LEFT:
                    report.existing += 1
                    line = (
                        f"{report.path}:{row.line}: {row.email} left list {list_id} ({state}): "
                        "not re-activated (only its owner can re-join, by confirming)"
                    )
                    report.left.append(line)
                    report.rejected.append(line)
                    continue
                if state is not None:
                    report.existing += 1
                    report.rejected.append(
                        f"{report.path}:{row.line}: duplicate: {row.email} is already on list "
                        f"{list_id} ({state})"
                    )
                    continue
                subscriber = Subscriber(
                    new_id(), list_id, row.email, row.name, row.locale, status, "import", now, now,
                    consent=consent,
                )  # fmt: skip
                fresh.append(_to_row(subscriber))
            if fresh:
                connection.execute(insert(subscribers), fresh)
        report.imported += len(fresh)

    def insert_many(self, rows: Iterable[Subscriber]) -> int:
        """Insert already-validated subscribers in batches (bulk loads, benchmarks)."""
        count = 0
        batch: list[dict[str, Any]] = []
        with self.engine.begin() as connection:
            for subscriber in rows:
                batch.append(_to_row(subscriber))
                if len(batch) >= _BATCH:
                    connection.execute(insert(subscribers), batch)
                    count += len(batch)
                    batch = []
            if batch:
                connection.execute(insert(subscribers), batch)
                count += len(batch)
        return count

    # --- reading -------------------------------------------------------------------------

    def get(self, subscriber_id: str) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
        return _from_row(row._mapping) if row else None

    def find(self, list_id: str, email: str) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers).where(
                    subscribers.c.list_id == list_id, subscribers.c.email_key == _key(email)
                )
            ).first()
        return _from_row(row._mapping) if row else None

    def iter(
        self, list_id: str | None = None, *, status: Status | None = None
    ) -> Iterator[Subscriber]:
        query = select(subscribers).order_by(subscribers.c.list_id, subscribers.c.email_key)
        if list_id is not None:
            query = query.where(subscribers.c.list_id == list_id)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as connection:
            for row in connection.execute(query).yield_per(_BATCH):
                yield _from_row(row._mapping)

    def locales(self, list_id: str) -> set[str]:
        """The locales the list's active subscribers chose ("" for none chosen): an issue
        is rendered once for each."""
        query = (
            select(subscribers.c.locale)
            .where(subscribers.c.list_id == list_id, subscribers.c.status == "active")
            .distinct()
        )
        with self.engine.connect() as connection:
            return {str(locale or "") for locale in connection.execute(query).scalars()}

    def choices(self, list_id: str, digest_id: str) -> set[tuple[str, tuple[str, ...]]]:
        """The distinct (locale, sections) pairs of the active subscribers who receive the
        digest: an issue is rendered once for each, never once per subscriber."""
        query = (
            select(subscribers.c.locale, subscribers.c.sections)
            .where(
                subscribers.c.list_id == list_id,
                subscribers.c.status == "active",
                receives(digest_id),
            )
            .distinct()
        )
        with self.engine.connect() as connection:
            return {
                (str(locale or ""), parse_choice(sections))
                for locale, sections in connection.execute(query)
            }

    def counts(self, list_id: str) -> dict[str, int]:
        query = (
            select(subscribers.c.status, func.count())
            .where(subscribers.c.list_id == list_id)
            .group_by(subscribers.c.status)
        )
        with self.engine.connect() as connection:
            found = {status: count for status, count in connection.execute(query)}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    # --- changing ------------------------------------------------------------------------

    def set_status(
        self,
        subscriber_id: str,
        status: Status,
        *,
        expected: Sequence[Status] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Change the status, only from one of `expected` when given; True if it changed."""
        query = update(subscribers).where(
            subscribers.c.id == subscriber_id, subscribers.c.status != status
        )
        if expected is not None:
            query = query.where(subscribers.c.status.in_(list(expected)))
        moment = now or datetime.now(UTC)
        with self.engine.begin() as connection:
            changed = connection.execute(query.values(status=status, updated=moment)).rowcount
            if changed and status in STATUS_EVENTS:
                row = connection.execute(
                    select(subscribers).where(subscribers.c.id == subscriber_id)
                ).first()
                _tell(connection, STATUS_EVENTS[status], row._mapping if row else {}, moment)
        if changed:
            log.info("subscriber %s is now %s", subscriber_id, status)
        return bool(changed)

    def update_profile(self, subscriber_id: str, **changes: str) -> bool:
        """Change the name or locale (never the status: see set_status)."""
        values = {key: value for key, value in changes.items() if key in ("name", "locale")}
        if not values:
            return False
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(subscribers).where(subscribers.c.id == subscriber_id).values(**values)
                ).rowcount
            )

    @staticmethod
    def row_to_subscriber(row: Any) -> Subscriber:
        return _from_row(row)

    def purge(self, subscriber_id: str) -> bool:
        """Erase a subscriber and their delivery history (a request to be forgotten)."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    delete(subscribers).where(subscribers.c.id == subscriber_id)
                ).rowcount
            )


def receives(digest_id: str) -> ColumnElement[bool]:
    """Subscribers who receive the digest: all the list's digests, or this one chosen."""
    return or_(
        subscribers.c.digests == "",
        subscribers.c.digests.contains(json.dumps(digest_id), autoescape=True),
    )


_FIELDS = tuple(f.name for f in fields(Subscriber))


def _suppressed_keys(connection: Connection, keys: Sequence[str]) -> set[str]:
    """Those of the lower-cased addresses the suppression list holds, or their domains."""
    domains = {key.rpartition("@")[2] for key in keys}
    found = set(
        connection.execute(
            select(suppressions.c.value).where(suppressions.c.value.in_([*keys, *domains]))
        ).scalars()
    )
    return {key for key in keys if key in found or key.rpartition("@")[2] in found}


def _to_row(subscriber: Subscriber) -> dict[str, Any]:
    return {
        **vars(subscriber),
        "email_key": _key(subscriber.email),
        "sections": choice_key(subscriber.sections),
        "digests": choice_key(subscriber.digests),
    }


def _tell(connection: Any, event_type: str, row: Any, moment: datetime) -> None:
    """Record the webhook event of a change, in the transaction that makes it."""
    if row:
        record_event(connection, event_type, subscriber_data(row), now=moment)


def _from_row(row: Any) -> Subscriber:
    values = {name: row[name] for name in _FIELDS}
    values["sections"] = parse_choice(values["sections"])
    values["digests"] = parse_choice(values["digests"])
    return Subscriber(**values)


# --- signed links ----------------------------------------------------------------------------

_GENERATED_SECRET = "link_secret"  # noqa: S105 - a settings key


def link_secret(config: Config, engine: Engine) -> bytes:
    """The key that signs subscriber links: the env var named by `web.secret_env`.

    Without it, an outbox-only setup (the demo) signs with a secret generated once for
    its database, so links keep working across runs; real sending (smtp) refuses to guess.
    """
    try:
        return read_secret(config.web.secret_env, "signing unsubscribe links").encode()
    except MissingSecretError:
        if config.delivery.transport != "outbox":
            raise
    with engine.begin() as connection:
        stored = connection.execute(
            select(settings.c.value).where(settings.c.key == _GENERATED_SECRET)
        ).scalar()
        generated = stored is None
        if stored is None:
            stored = secrets.token_urlsafe(32)
            connection.execute(insert(settings).values(key=_GENERATED_SECRET, value=stored))
    log.log(
        logging.WARNING if generated else logging.INFO,
        "%s is not set: links are signed with a secret generated for this database "
        "(fine for the outbox; set %s before sending real mail)",
        config.web.secret_env,
        config.web.secret_env,
    )
    return str(stored).encode()


def known_link_secret(config: Config, engine: Engine) -> bytes | None:
    """The key real mail's links are signed with, if one exists yet; unlike link_secret,
    never generates one (a preview records nothing)."""
    try:
        return read_secret(config.web.secret_env, "signing unsubscribe links").encode()
    except MissingSecretError:
        pass
    with engine.connect() as connection:
        stored = connection.execute(
            select(settings.c.value).where(settings.c.key == _GENERATED_SECRET)
        ).scalar()
    return None if stored is None else str(stored).encode()


Purpose = Literal["unsubscribe", "confirm", "preferences", "form"]


def sign(secret: bytes, purpose: Purpose, subscriber_id: str) -> str:
    """A token naming the subscriber, valid for one purpose only."""
    mac = hmac.new(secret, f"{purpose}|{subscriber_id}".encode(), hashlib.sha256).digest()
    return f"{subscriber_id}.{base64.urlsafe_b64encode(mac[:18]).decode()}"


def verify(secret: bytes, purpose: Purpose, token: str) -> str | None:
    """The subscriber id a genuine token names, or None for a forged or altered one."""
    subscriber_id, _, _ = token.partition(".")
    if not subscriber_id or len(token) > 100:
        return None
    return (
        subscriber_id if hmac.compare_digest(sign(secret, purpose, subscriber_id), token) else None
    )


class Links:
    """Builds each subscriber's Recipient, with their signed links under web.base_url."""

    def __init__(self, config: Config, secret: bytes) -> None:
        self.urls = Urls(config)
        self.secret = secret
        self.mailto_pattern = config.bounces.unsubscribe_address

    def unsubscribe_url(self, subscriber_id: str) -> str:
        return self.urls.unsubscribe(sign(self.secret, "unsubscribe", subscriber_id))

    def confirm_url(self, subscriber_id: str) -> str:
        return self.urls.confirm(sign(self.secret, "confirm", subscriber_id))

    def preferences_url(self, subscriber_id: str) -> str:
        return self.urls.preferences(sign(self.secret, "preferences", subscriber_id))

    def unsubscribe_mailto(self, subscriber_id: str) -> str:
        """`mailto:` the signed unsubscribe address (bounces.unsubscribe_address), which
        kabar.inbound reads; "" when none is configured."""
        from kabar import verp

        if not self.mailto_pattern or not re.fullmatch(r"[0-9a-z]{1,32}", subscriber_id):
            return ""
        token = verp.unsubscribe_token(self.secret, subscriber_id)
        return f"mailto:{verp.address(self.mailto_pattern, token)}?subject=unsubscribe"

    def recipient(
        self, subscriber_id: str, email: str, name: str = "", locale: str = "", *,
        variant: str = "",
    ) -> Recipient:  # fmt: skip
        # "Atur langganan" opens the preference centre; the unsubscribe link (and
        # List-Unsubscribe, whose mailto comes second: one-click https first) leaves it.
        return Recipient(
            subscriber_id=subscriber_id,
            email=email,
            name=name,
            locale=locale,
            unsubscribe_url=self.unsubscribe_url(subscriber_id),
            unsubscribe_mailto=self.unsubscribe_mailto(subscriber_id),
            preferences_url=self.preferences_url(subscriber_id),
            variant=variant,
        )
