"""The index snapshot beside a SQLite database: reused on opening, caught up with the
store's changes, ignored when it doesn't fit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from kabar.config import Config, Related
from kabar.ingest import ingest_path
from kabar.related import RelatedEngine, snapshot
from kabar.store import Store
from kabar.store.tables import articles, related_features

from ..support.project import SEED, SEED_AS_OF

LOOSE = Related(min_score=0.01)


@pytest.fixture
def sqlite_store(tmp_path: Path, config: Config) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'kabar.db'}") as store:
        ingest_path(config, store, SEED, "seeds", as_of=SEED_AS_OF)
        yield store


def blocks(engine: RelatedEngine, store: Store) -> list[list[tuple[str | None, float]]]:
    return [
        [(item.article_id, item.score) for item in engine.related(a, settings=LOOSE)]
        for a in store.articles()
    ]


def test_loading_writes_a_snapshot_that_the_next_process_uses(
    sqlite_store: Store, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    path = snapshot.path_for(sqlite_store)
    assert path == Path(str(sqlite_store.engine.url.database) + ".related.npz")
    first = RelatedEngine.open(config, sqlite_store)
    first.load()
    assert path.exists()
    # It holds the window before the newest article, not the 2021 story of the seeds.
    held = [a for a in sqlite_store.articles() if first.span.holds(a.published)]
    assert len(held) == len(first.index) == 10
    expected = blocks(first, sqlite_store)
    assert any(expected) and expected == blocks(
        RelatedEngine.build(held, site_language="id"), sqlite_store
    )
    # Without its stored terms, a reopened engine still needs no analysis: the snapshot
    # holds the index.
    with sqlite_store.engine.begin() as connection:
        connection.execute(delete(related_features))
    caplog.set_level(logging.INFO, logger="kabar.related")
    second = RelatedEngine.open(config, sqlite_store)
    second.load()
    assert "terms are missing" not in caplog.text
    assert len(second.index) == 10 and blocks(second, sqlite_store) == expected


def test_the_snapshot_is_caught_up_with_changed_new_and_removed_articles(
    sqlite_store: Store, config: Config
) -> None:
    RelatedEngine.open(config, sqlite_store).load()
    stored = list(sqlite_store.articles())
    changed = stored[0].with_changes(title="Kim Jong Un bertemu Xi Jinping lagi")
    added = stored[1].with_changes(id="baru", guid="baru", url="https://kabar.example.id/baru")
    sqlite_store.upsert([changed, added], now=SEED_AS_OF + timedelta(hours=1))
    RelatedEngine.open(config, sqlite_store).add([changed, added])  # as ingest does
    with sqlite_store.engine.begin() as connection:
        connection.execute(delete(articles).where(articles.c.id == stored[2].id))

    engine = RelatedEngine.open(config, sqlite_store)
    engine.load()
    index = engine.index
    assert len(index) == 10 and stored[2].id not in index.by_id and "baru" in index.by_id
    assert index.docs[index.by_id[changed.id]].title == changed.title
    # The same blocks as an index built afresh (scores move a little with the IDF).
    held = [a for a in sqlite_store.articles() if engine.span.holds(a.published)]
    fresh = RelatedEngine.build(held, site_language="id")
    shown = [{i for i, _ in block} for block in blocks(engine, sqlite_store)]
    assert any(shown) and shown == [{i for i, _ in b} for b in blocks(fresh, sqlite_store)]


def test_a_snapshot_that_does_not_fit_is_ignored_and_replaced(
    sqlite_store: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = snapshot.path_for(sqlite_store)
    assert path is not None
    path.write_bytes(b"not a snapshot")
    engine = RelatedEngine.open(config, sqlite_store)
    engine.load()
    assert len(engine.index) == 10 and snapshot.load(path, "id") is not None
    monkeypatch.setattr(snapshot, "ANALYSER_VERSION", "another")
    assert snapshot.load(path, "id") is None
    monkeypatch.undo()
    assert snapshot.load(path, "en") is None  # articles without a language would differ


def test_other_databases_have_no_snapshot(config: Config) -> None:
    with Store.open("sqlite:///:memory:") as store:
        assert snapshot.path_for(store) is None
