"""Table definitions. Alembic migrations (store/migrations) create them; these
definitions are what queries are written against."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as UTC; always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

articles = Table(
    "articles",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("guid", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("body_text", Text, nullable=False, default=""),
    Column("body_html", Text, nullable=False, default=""),
    Column("published", UTCDateTime, nullable=False),
    Column("published_offset", Integer, nullable=False),  # minutes east of UTC
    Column("updated", UTCDateTime, nullable=False),
    Column("updated_offset", Integer, nullable=False),
    Column("authors", JSON, nullable=False),
    Column("credit", Text, nullable=False, default=""),
    Column("section", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("image_url", Text, nullable=False, default=""),
    Column("image_alt", Text, nullable=False, default=""),
    Column("language", String(16), nullable=False, default=""),
    Column("dateline", Text, nullable=False, default=""),
    Column("cross_links", JSON, nullable=False),
    Column("related", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("ingested", UTCDateTime, nullable=False),
    # A hash of `url`: one canonical URL is one article, whatever source brought it.
    # Hashed because a btree entry (PostgreSQL's) can't hold an arbitrarily long URL.
    Column("url_key", String(32), nullable=True),
    UniqueConstraint("source", "guid"),
    Index("ix_articles_url_key", "url_key", unique=True),
    Index(None, "published"),
    Index(None, "source", "published"),
)

# One row per section, tag and author of an article, so feeds split by any of them and
# digests filtered by them are index lookups rather than scans of JSON.
article_facets = Table(
    "article_facets",
    metadata,
    Column(
        "article_id", String(16), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("facet", String(16), primary_key=True),  # section | tag | author
    Column("value", Text, primary_key=True),
    Column("published", UTCDateTime, nullable=False),
    Index(None, "facet", "value", "published"),
)

# What a remote source said last time, for conditional GET.
source_state = Table(
    "source_state",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("fetched", UTCDateTime),
)

# The analysed terms of each article for related news (kabar.related), so the index is
# rebuilt on start without analysing every article again. `content_hash` and `analyser`
# say what the terms were computed from; a mismatch means "analyse again".
related_features = Table(
    "related_features",
    metadata,
    Column(
        "article_id", String(16), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("content_hash", String(64), nullable=False),
    Column("analyser", String(32), nullable=False),
    Column("features", LargeBinary, nullable=False),  # int32 feature ids, then float32 counts
)

# --- delivery (migration 0003) ---------------------------------------------------------

# One row per address per list: the id (random, so not guessable) is what tokens sign.
subscribers = Table(
    "subscribers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("list_id", String(64), nullable=False),
    Column("email", Text, nullable=False),  # as validated and normalised
    Column("email_key", Text, nullable=False),  # lower-cased, for uniqueness
    Column("name", Text, nullable=False, default=""),
    Column("locale", String(16), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # pending|active|unsubscribed|bounced|complained
    Column("origin", String(16), nullable=False),  # import|cli|web
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),  # last status change
    # --- the subscriber's choices and consent (migration 0007)
    Column("sections", Text, nullable=False, default=""),  # JSON list, sorted; "": all
    Column("digests", Text, nullable=False, default=""),  # JSON list of digest ids; "": all
    Column("consent", JSON, nullable=True),  # how it came and was confirmed (kabar.consent)
    UniqueConstraint("list_id", "email_key"),
    Index(None, "list_id", "status", "id"),
    Index(None, "email_key"),  # an address on every list: a bounce, a complaint (0006)
)

# One issue per key "{digest}:{list}:{local period}"; `state` moves by compare-and-set.
issues = Table(
    "issues",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("digest_id", String(64), nullable=False),
    Column("list_id", String(64), nullable=False),
    Column("period", String(32), nullable=False),
    Column("issue_time", UTCDateTime, nullable=False),  # the window ends here
    Column("state", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),  # why it paused, failed or was skipped
    Column("prepared", JSON),  # PreparedIssue.dump() once rendered
    Column("audience", Integer, nullable=False, default=0),
    Column("chunks", Integer, nullable=False, default=0),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Index(None, "digest_id", "list_id", "issue_time"),
    Index(None, "state"),
)

# The delivery ledger: one row per (issue, subscriber).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_key", String(200), ForeignKey("issues.key", ondelete="CASCADE"), nullable=False),
    Column(
        "subscriber_id",
        String(32),
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("chunk", Integer, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("state", String(16), nullable=False),  # pending|claimed|sent|retry_wait|failed|…
    Column("attempts", Integer, nullable=False, default=0),
    Column("claim", String(32)),  # the claim that holds it; results commit only under it
    Column("owner", String(128)),  # host:pid of the sender holding the claim
    Column("lease_until", UTCDateTime),
    Column("next_attempt", UTCDateTime),
    Column("code", Integer),  # the last SMTP reply code (0: no reply)
    Column("reply", Text, nullable=False, default=""),  # the last reply text
    Column("codes", Text, nullable=False, default=""),  # every reply code, oldest first
    Column("sent", UTCDateTime),
    # The rendering it gets: "{language}/{sections}" (migration 0007); None before that.
    Column("variant", String(200), nullable=True),
    UniqueConstraint("issue_key", "subscriber_id"),
    Index(None, "issue_key", "chunk", "state"),
    Index(None, "claim"),
    Index(None, "message_id"),  # what a complaint's returned original names (0006)
)

# Where each schedule got to: the last logical fire time it handled.
schedule_state = Table(
    "schedule_state",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("last_fired", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
)

# Named leases (the scheduler's): held by one owner until `expires`, renewed while alive.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires", UTCDateTime, nullable=False),
)

# Values kabar generates for itself, such as the link-signing secret of an outbox demo.
settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Mails kabar sends one at a time, outside any issue (a subscribe confirmation): when each
# was queued and sent, and what the transport answered, so an admin can look it up.
mails = Table(
    "mails",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # confirm
    Column("list_id", String(64), nullable=False),
    Column(
        "subscriber_id",
        String(32),
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("email", Text, nullable=False),  # the address it went to
    Column("message_id", Text, nullable=False),
    Column("state", String(16), nullable=False),  # queued|sent|failed
    Column("queued", UTCDateTime, nullable=False),
    Column("sent", UTCDateTime),  # when the transport accepted it
    Column("code", Integer),  # the transport's reply code (0: no reply)
    Column("reply", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Index(None, "subscriber_id"),
    Index(None, "queued"),
)

# Sliding-window limits (the subscribe form's per address and per client IP): the times of
# the hits still inside the window, kept in the database so every process sees them.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("hits", Text, nullable=False),  # milliseconds since the epoch, space-separated
    Column("expires", UTCDateTime, nullable=False),  # the newest hit leaves the window then
    Index(None, "expires"),
)

# --- the subscriber's side (migration 0007) ----------------------------------------------

# Every change a subscriber (or an admin) made to a subscription: what, when, from where.
subscriber_events = Table(
    "subscriber_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        String(32),
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),  # subscribed|confirmed|changed|left|...
    Column("detail", JSON, nullable=False),  # {"field": [before, after], ...}
    Column("ip", Text, nullable=False),
    Column("user_agent", Text, nullable=False),
    Index(None, "subscriber_id"),
)

# Addresses whose owners asked to be forgotten: only a SHA-256 of the lower-cased address,
# so an import cannot bring them back while nothing else about them is kept.
forgotten = Table(
    "forgotten",
    metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("forgotten", UTCDateTime, nullable=False),
)


# --- operations (migration 0008) -----------------------------------------------------------

# Bearer tokens of the HTTP API: the id is shown in lists; only a hash of the secret is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 hex of the secret part
    Column("name", Text, nullable=False, default=""),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("created", UTCDateTime, nullable=False),
    Column("last_used", UTCDateTime),
    Column("revoked", UTCDateTime),
)

# Events for webhooks out, written in the same transaction as the change they tell of.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),  # msg_…: the webhook-id header
    Column("type", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body, byte for byte as signed
    Column("created", UTCDateTime, nullable=False),
    Column("fanned_out", Integer, nullable=False, default=0),  # deliveries made for it
    Index(None, "fanned_out", "created"),
)

# One row per event per endpoint: the webhook ledger.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "event_id",
        String(40),
        ForeignKey("webhook_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("endpoint", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending|sent|held (endpoint disabled)
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("updated", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "endpoint"),
    Index(None, "state", "next_attempt"),
)

# An endpoint's health: failing since when, and disabled after failing too long.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("failing_since", UTCDateTime),
    Column("disabled", UTCDateTime),
    Column("detail", Text, nullable=False, default=""),
)

# The last run of each scheduler job, for `kabar jobs`.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("started", UTCDateTime, nullable=False),
    Column("finished", UTCDateTime, nullable=False),
    Column("lag_seconds", Integer, nullable=False, default=0),
    Column("outcome", String(16), nullable=False),  # ok|failed
    Column("detail", Text, nullable=False, default=""),
)


# --- what comes back (migration 0009) --------------------------------------------------

# Addresses, or whole domains, no issue, import or subscription ever includes.
suppressions = Table(
    "suppressions",
    metadata,
    Column("value", String(320), primary_key=True),  # a lower-cased address, or a domain
    Column("kind", String(16), nullable=False),  # address|domain
    Column("reason", String(32), nullable=False),  # complaint|admin|import
    Column("detail", Text, nullable=False, default=""),
    Column("created", UTCDateTime, nullable=False),
    Index(None, "kind"),  # the domain entries, scanned for each address of a snapshot
)

# One row per result read from what came back (a DSN's recipient, a complaint, a mailto
# unsubscribe, an auto-reply, something not understood). `key` (the returned message's
# Message-ID plus the delivery) makes reading the same message twice change nothing.
inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # hard|soft|delayed|complaint|unsubscribe|…
    Column("source", String(16), nullable=False),  # maildir|imap|file|ses|mailgun|…
    Column("received", UTCDateTime, nullable=False),
    Column("message_id", Text, nullable=False, default=""),  # of the returned message
    Column("delivery_id", Integer),  # the delivery the VERP token or Message-ID named
    Column("issue_key", String(200)),
    Column("subscriber_id", String(32)),
    Column("email", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, default=""),  # the DSN's status, 5.1.1
    Column("detail", Text, nullable=False, default=""),  # the diagnostic, or why not understood
    Column("effect", Text, nullable=False, default=""),  # what kabar changed because of it
    Index(None, "subscriber_id", "kind", "received"),
    Index(None, "issue_key", "kind"),
    Index(None, "kind", "received"),
)
