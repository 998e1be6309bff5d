"""The article store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Migrations run on open, so a fresh database or an older one is brought to the
current schema before anything reads it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from kabar.model import Article, RelatedLink, offset_minutes, url_key, with_offset
from kabar.store.tables import article_facets, articles, source_state

if TYPE_CHECKING:
    from sqlalchemy import Select

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# What `Store.query` fills in for columns a statement leaves out.
OPTIONAL_COLUMNS: dict[str, Any] = {
    "body_text": "", "credit": "", "dateline": "", "cross_links": [], "related": [],
    "ingested": None,
}  # fmt: skip
# SQLite allows 32,766 bound parameters; an `IN` list of this many ids stays well below.
_BATCH = 500


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # left out: another source already holds their URL

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        return self


@dataclass(frozen=True)
class SourceState:
    etag: str | None = None
    last_modified: str | None = None


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """The database URL with any password masked, for logs and messages: the one before
    the host and one in the query (`?password=`), which drivers accept too."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show none of it
        return "(a value that is not a database URL)"
    return _QUERY_PASSWORD.sub(r"\1***", shown)


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (kabar serve) never block the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe under WAL
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, "head")


def pending_migrations(engine: Engine) -> int:
    """How many migrations the next command will apply (all of them to a new database);
    reads the schema's revision and changes nothing."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return sum(1 for _ in script.iterate_revisions("head", current))


class Store:
    """Reads and writes articles. One instance per process; it owns the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, run_migrations: bool = True) -> Store:
        engine = create_db_engine(url)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------

    def upsert(self, batch: Iterable[Article], *, now: datetime | None = None) -> UpsertResult:
        """Insert new articles and update changed ones; identical input changes nothing.

        A changed article (different content hash) gets `updated` set to the time the
        source gave, or to `now` when the source gave none newer than the stored one.
        """
        moment = now or datetime.now(UTC)
        result = UpsertResult()
        with self.engine.begin() as connection:
            unique = list(_dedupe(batch))
            pending = _canonical(connection, unique)
            result.duplicates = len(unique) - len(pending)
            for start in range(0, len(pending), _BATCH):
                result += self._upsert_batch(connection, pending[start : start + _BATCH], moment)
        return result

    def _upsert_batch(
        self, connection: Connection, batch: Sequence[Article], now: datetime
    ) -> UpsertResult:
        ids = [article.id for article in batch]
        stored = {
            row.id: (row.content_hash, row.updated)
            for row in connection.execute(
                select(articles.c.id, articles.c.content_hash, articles.c.updated).where(
                    articles.c.id.in_(ids)
                )
            )
        }
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        result = UpsertResult()
        for article in batch:
            previous = stored.get(article.id)
            if previous is None:
                new_rows.append(_to_row(article, now))
                result.inserted += 1
            elif previous[0] == article.content_hash:
                result.unchanged += 1
            else:
                updated = article.updated if article.updated > previous[1] else now
                changed_rows.append(_to_row(article.with_changes(updated=updated), now))
                result.updated += 1
        if new_rows:
            connection.execute(insert(articles), new_rows)
        if changed_rows:
            changed_ids = [row["id"] for row in changed_rows]
            connection.execute(
                delete(article_facets).where(article_facets.c.article_id.in_(changed_ids))
            )
            for row in changed_rows:
                connection.execute(update(articles).where(articles.c.id == row["id"]).values(row))
        facets = [facet for row in (*new_rows, *changed_rows) for facet in _facet_rows(row)]
        if facets:
            connection.execute(insert(article_facets), facets)
        return result

    def canonical(self, batch: Sequence[Article]) -> list[Article]:
        """`batch` as `upsert` stores it (see `_canonical`): the ids it is stored under, and
        without the articles whose URL another source holds."""
        with self.engine.connect() as connection:
            return _canonical(connection, list(_dedupe(batch)))

    # --- reading -----------------------------------------------------------------------

    def get(self, article_id: str) -> Article | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(articles).where(articles.c.id == article_id)).first()
        return _from_row(row._mapping) if row else None

    def articles(
        self,
        *,
        sources: Sequence[str] | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        facet: tuple[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> Iterator[Article]:
        """Articles by publication time, newest first unless told otherwise."""
        query = select(articles)
        if sources is not None:
            query = query.where(articles.c.source.in_(list(sources)))
        if since is not None:
            query = query.where(articles.c.published >= since)
        if before is not None:
            query = query.where(articles.c.published < before)
        if facet is not None:
            kind, value = facet
            matching = select(article_facets.c.article_id).where(
                article_facets.c.facet == kind, article_facets.c.value == value
            )
            query = query.where(articles.c.id.in_(matching))
        order = articles.c.published.desc() if newest_first else articles.c.published.asc()
        query = query.order_by(order, articles.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            for row in connection.execute(query).yield_per(1000):
                yield _from_row(row._mapping)

    def query(self, statement: Select[Any]) -> list[Article]:
        """Articles from a SELECT over `articles`, for the filters `articles()` does not
        offer (feeds: any-of facets, keyset pages). Columns the statement leaves out of
        `OPTIONAL_COLUMNS` come back empty: feeds skip what they never show."""
        with self.engine.connect() as connection:
            result = connection.execute(statement)
            names = set(result.keys())
            absent = {k: v for k, v in OPTIONAL_COLUMNS.items() if k not in names}
            return [_from_row({**absent, **row._mapping}) for row in result]

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(articles)).scalar_one())

    # --- source state (conditional GET) ------------------------------------------------

    def source_state(self, source: str) -> SourceState:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(source_state).where(source_state.c.source == source)
            ).first()
        return SourceState(row.etag, row.last_modified) if row else SourceState()

    def save_source_state(self, source: str, state: SourceState, *, now: datetime) -> None:
        values = {"etag": state.etag, "last_modified": state.last_modified, "fetched": now}
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(source_state).where(source_state.c.source == source).values(values)
            ).rowcount
            if not changed:
                connection.execute(insert(source_state).values(source=source, **values))


def _dedupe(batch: Iterable[Article]) -> Iterator[Article]:
    """The last of several articles with one id wins, as if upserted one by one."""
    latest: dict[str, Article] = {}
    for article in batch:
        latest.pop(article.id, None)
        latest[article.id] = article
    yield from latest.values()


def _canonical(connection: Connection, batch: list[Article]) -> list[Article]:
    """One article per URL. The first source to store a URL owns it: the same URL again
    from that source (under another guid) is an update of that article, and from any
    other source it is left out, so that no feed can take over another's articles."""
    owners: dict[str, tuple[str, str, str]] = {}  # url_key -> (id, guid, source)
    keys = list({url_key(article.url) for article in batch})
    for start in range(0, len(keys), _BATCH):
        query = select(articles.c.url_key, articles.c.id, articles.c.guid, articles.c.source)
        chunk = keys[start : start + _BATCH]
        for row in connection.execute(query.where(articles.c.url_key.in_(chunk))):
            owners[row.url_key] = (row.id, row.guid, row.source)
    out = []
    for article in batch:
        owner = owners.setdefault(url_key(article.url), (article.id, article.guid, article.source))
        if owner[2] != article.source:
            continue
        if owner[0] != article.id:
            article = replace(article, id=owner[0], guid=owner[1])
        out.append(article)
    return list(_dedupe(out))


def _to_row(article: Article, now: datetime) -> dict[str, Any]:
    return {
        "url_key": url_key(article.url),
        "id": article.id,
        "guid": article.guid,
        "source": article.source,
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "body_text": article.body_text,
        "body_html": article.body_html,
        "published": article.published,
        "published_offset": offset_minutes(article.published),
        "updated": article.updated,
        "updated_offset": offset_minutes(article.updated),
        "authors": list(article.authors),
        "credit": article.credit,
        "section": article.section,
        "tags": list(article.tags),
        "image_url": article.image_url,
        "image_alt": article.image_alt,
        "language": article.language,
        "dateline": article.dateline,
        "cross_links": list(article.cross_links),
        "related": [link.to_dict() for link in article.related],
        "content_hash": article.content_hash,
        "ingested": now,
    }


def _facet_rows(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    values = {("section", row["section"])} if row["section"] else set()
    values.update(("tag", tag) for tag in row["tags"])
    values.update(("author", author) for author in row["authors"])
    for facet, value in sorted(values):
        yield {
            "article_id": row["id"],
            "facet": facet,
            "value": value,
            "published": row["published"],
        }


def _from_row(row: Any) -> Article:
    return Article(
        id=row["id"],
        guid=row["guid"],
        source=row["source"],
        url=row["url"],
        title=row["title"],
        summary=row["summary"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        published=with_offset(row["published"], row["published_offset"]),
        updated=with_offset(row["updated"], row["updated_offset"]),
        authors=tuple(row["authors"]),
        credit=row["credit"],
        section=row["section"],
        tags=tuple(row["tags"]),
        image_url=row["image_url"],
        image_alt=row["image_alt"],
        language=row["language"],
        dateline=row["dateline"],
        cross_links=tuple(row["cross_links"]),
        related=tuple(RelatedLink(**link) for link in row["related"]),
        content_hash=row["content_hash"],
    )


def insert_ignore(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was inserted."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).values(values).on_conflict_do_nothing().returning(key)
    return connection.execute(statement).first() is not None
