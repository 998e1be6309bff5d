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
    UniqueConstraint("source", "guid"),
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
