from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kabar.model import Article, RelatedLink, article_id
from kabar.store import Store
from kabar.store.feeds import facet_values
from kabar.store.tables import metadata

WIB = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


def make(guid: str = "https://kabar.example.id/a/1", **fields: object) -> Article:
    values: dict[str, object] = {
        "id": article_id("wire", guid),
        "guid": guid,
        "source": "wire",
        "url": guid,
        "title": "Judul",
        "published": datetime(2021, 7, 11, 17, 0, tzinfo=WIB),
        "updated": datetime(2021, 7, 11, 17, 0, tzinfo=WIB),
        "summary": "Ringkas",
        "body_text": "Isi",
        "body_html": "<p>Isi</p>",
        "authors": ("Istman MP",),
        "section": "Dunia",
        "tags": ("korea-utara", "cina"),
        "related": (RelatedLink("Lain", "https://kabar.example.id/a/2", "ringkas"),),
    }
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store, store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_round_trip_keeps_every_field_and_the_original_offset(store: Store) -> None:
    article = make()
    store.upsert([article], now=NOW)
    stored = store.get(article.id)
    assert stored == article
    assert stored is not None and stored.published.utcoffset() == timedelta(hours=7)
    assert stored.published.isoformat() == "2021-07-11T17:00:00+07:00"


def test_upserting_the_same_input_twice_changes_nothing(store: Store) -> None:
    articles = [make(), make("https://kabar.example.id/a/2", title="Dua")]
    first = store.upsert(articles, now=NOW)
    before = list(store.articles())
    second = store.upsert(articles, now=NOW + timedelta(hours=1))
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    assert list(store.articles()) == before


def test_a_changed_article_updates_its_time_and_hash(store: Store) -> None:
    original = make()
    store.upsert([original], now=NOW)
    edited = original.with_changes(title="Judul baru")
    later = NOW + timedelta(hours=2)
    result = store.upsert([edited], now=later)
    stored = store.get(original.id)
    assert (result.updated, result.inserted) == (1, 0)
    assert stored is not None
    assert stored.title == "Judul baru"
    assert stored.updated == later
    assert stored.content_hash != original.content_hash
    assert stored.content_hash == edited.content_hash
    assert stored.published == original.published


def test_a_newer_updated_time_from_the_source_wins(store: Store) -> None:
    original = make()
    store.upsert([original], now=NOW)
    source_time = datetime(2021, 7, 12, 9, 30, tzinfo=WIB)
    store.upsert([original.with_changes(title="Ralat", updated=source_time)], now=NOW)
    stored = store.get(original.id)
    assert stored is not None and stored.updated == source_time


def test_facets_follow_edits(store: Store) -> None:
    original = make()
    store.upsert([original], now=NOW)
    assert [a.id for a in store.articles(facet=("tag", "cina"))] == [original.id]
    store.upsert([original.with_changes(tags=("ekonomi",), section="Bisnis")], now=NOW)
    assert list(store.articles(facet=("tag", "cina"))) == []
    assert [a.id for a in store.articles(facet=("section", "Bisnis"))] == [original.id]
    assert facet_values(store, "tag") == ["ekonomi"]
    assert facet_values(store, "author") == ["Istman MP"]


def test_queries_filter_by_source_and_time_newest_first(store: Store) -> None:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=WIB)
    articles = [
        make(f"https://kabar.example.id/a/{n}", published=base - timedelta(hours=n),
             updated=base - timedelta(hours=n))
        for n in range(5)
    ]  # fmt: skip
    other = make("https://other.example/x", source="other", published=base, updated=base)
    other = other.with_changes(id=article_id("other", other.guid))
    store.upsert([*articles, other], now=NOW)
    window = store.articles(
        sources=["wire"], since=base - timedelta(hours=3), before=base, limit=10
    )
    assert [a.guid for a in window] == [f"https://kabar.example.id/a/{n}" for n in (1, 2, 3)]
    assert store.count() == 6


def test_duplicates_within_one_batch_keep_the_last(store: Store) -> None:
    first = make()
    second = first.with_changes(title="Versi kedua")
    result = store.upsert([first, second], now=NOW)
    stored = store.get(first.id)
    assert result.inserted == 1 and stored is not None and stored.title == "Versi kedua"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(published=datetime(2021, 7, 11, 17, 0))


def test_large_batches_cross_the_parameter_limit(store: Store) -> None:
    many = [make(f"https://kabar.example.id/b/{n}") for n in range(1200)]
    assert store.upsert(many, now=NOW).inserted == 1200
    assert store.upsert(many, now=NOW).unchanged == 1200


def test_the_url_migration_keeps_the_first_copy_of_a_url(database_url: str) -> None:
    """A store from before one-article-per-URL may hold a URL twice, under two sources."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from kabar.store import MIGRATIONS, _to_row, create_db_engine
    from kabar.store.tables import articles

    engine = create_db_engine(database_url)
    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, "0003")
    first = make()
    second = make().with_changes(id=article_id("other", first.guid), source="other", title="2")
    with engine.begin() as connection:
        for article, ingested in ((first, NOW), (second, NOW + timedelta(hours=1))):
            row = _to_row(article, ingested)
            del row["url_key"]
            connection.execute(articles.insert().values(**row))
    engine.dispose()
    with Store.open(database_url) as store:
        assert [a.id for a in store.articles()] == [first.id]
        assert store.upsert([second], now=NOW).duplicates == 1
        assert [(a.id, a.title) for a in store.articles()] == [(first.id, "Judul")]
