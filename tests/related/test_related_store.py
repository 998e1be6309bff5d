"""The related index against a real store: terms kept across restarts, ingest adds to it,
and the `kabar related` command."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from kabar import config as config_module
from kabar import ingest
from kabar.cli import cli
from kabar.config import Config
from kabar.ingest import ingest_path
from kabar.related import RelatedEngine, worker
from kabar.store import Store
from kabar.store.tables import related_features

from ..support.project import SEED, SEED_AS_OF, WriteConfig


def stored_terms(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(related_features)).scalar_one()
        )


def main_article(store: Store):  # type: ignore[no-untyped-def]
    return next(a for a in store.articles() if a.related)


def test_ingest_stores_terms_and_the_block_puts_publisher_items_first(
    config: Config, store: Store
) -> None:
    report = ingest_path(config, store, SEED, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 11
    assert stored_terms(store) == 11
    article = main_article(store)
    items = RelatedEngine.open(config, store).related(article)
    chosen = [i for i in items if i.chosen_by_publisher]
    assert len(chosen) == 3 and items[:3] == chosen  # per_item 3, all chosen by Tempo
    assert chosen[0].title.startswith("Gedung Putih Minta Rusia")
    assert all(i.article_id and i.published for i in chosen)  # matched by URL
    # An issue dated before those stories existed can't link to them.
    early = RelatedEngine.open(config, store).related(
        article, before=article.published + timedelta(days=1)
    )
    assert not any(i.chosen_by_publisher for i in early)


def test_terms_survive_a_restart_and_changes_are_picked_up(config: Config, store: Store) -> None:
    ingest_path(config, store, SEED, "seeds", as_of=SEED_AS_OF)
    first = RelatedEngine.open(config, store)
    first.load()
    assert len(first.index) == 10  # the 2021 story is outside the window held
    # Unchanged articles are not analysed again; a changed one is, and replaces its row.
    article = next(store.articles())  # the newest: inside the window held
    assert RelatedEngine.open(config, store).add(store.articles()) == 0
    changed = article.with_changes(title="Xi Jinping dan Kim Jong Un bertemu lagi")
    store.upsert([changed], now=SEED_AS_OF + timedelta(hours=1))
    assert RelatedEngine.open(config, store).add([changed]) == 1
    assert stored_terms(store) == 11
    first.refresh()  # another process stored it; the loaded index catches up
    doc = first.index.docs[first.index.by_id[article.id]]
    assert doc.title == changed.title and len(first.index) == 10


def test_missing_terms_are_rebuilt_from_the_store(config: Config, store: Store) -> None:
    ingest_path(config, store, SEED, "seeds", as_of=SEED_AS_OF)
    with store.engine.begin() as connection:
        connection.execute(related_features.delete())
    engine = RelatedEngine.open(config, store)
    engine.load()
    assert len(engine.index) == stored_terms(store) == 10  # those of the window held


def test_related_command(write_config: WriteConfig) -> None:
    path = write_config()
    runner = CliRunner()
    ingested = runner.invoke(cli, ["-c", str(path), "ingest", "--as-of", SEED_AS_OF.isoformat()])
    assert ingested.exit_code == 0, ingested.output
    with Store.open(config_module.load(path).database_url) as store:
        article = main_article(store)
    result = runner.invoke(cli, ["-c", str(path), "related", article.id, "--json"])
    assert result.exit_code == 0, result.output
    block = json.loads(result.output)
    assert block["id"] == article.id
    assert [r["chosen_by_publisher"] for r in block["related"]] == [True, True, True]
    assert all(isinstance(r["score"], float) and r["id"] for r in block["related"])

    shown = runner.invoke(cli, ["-c", str(path), "related", "--all"])
    assert shown.exit_code == 0 and article.title in shown.output and "publisher" in shown.output

    unknown = runner.invoke(cli, ["-c", str(path), "related", "nope"])
    assert (
        unknown.exit_code == 2
        and "ARTICLE_ID: no stored article with id(s): nope" in unknown.output
    )
    assert runner.invoke(cli, ["-c", str(path), "related"]).exit_code == 2


def test_check_refuses_more_min_items_than_per_item(write_config: WriteConfig) -> None:
    path = write_config(related={"per_item": 3, "min_items": 4})
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    expected = (
        rf"^{re.escape(str(path))}:\d+:\d+: related: min_items \(4\) is more than per_item \(3\)"
    )
    assert re.search(expected, result.output, re.MULTILINE), result.output


def test_check_refuses_an_unknown_fill(write_config: WriteConfig) -> None:
    path = write_config(related={"fill": "anything"})
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: related.fill: ", result.output, re.M), (
        result.output
    )


def write_json_sources(folder: Path, files: int, per_file: int) -> None:
    folder.mkdir()
    topics = ["banjir Jakarta", "harga beras", "pemilu presiden", "gempa Sulawesi"]
    for f in range(files):
        records = [
            {
                "url": f"https://kabar.example.id/read/{f}-{n}",
                "title": f"Berita {topics[n % 4]} hari ke-{f}",
                "body": f"Laporan tentang {topics[n % 4]} dari redaksi, bagian {f} {n}.",
                "published": f"2024-04-{10 + f:02d}T0{n}:00:00+07:00",
            }
            for n in range(per_file)
        ]
        lines = "\n".join(json.dumps(r) for r in records)
        (folder / f"{f}.jsonl").write_text(lines + "\n", encoding="utf-8")


@pytest.mark.parametrize("worker_fails", [False, True], ids=["worker", "worker-fails"])
def test_a_large_ingest_analyses_in_a_second_process_and_loses_no_terms(
    config: Config,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    worker_fails: bool,
) -> None:
    write_json_sources(tmp_path / "json", files=3, per_file=4)
    monkeypatch.setattr(ingest, "_FLUSH_EVERY", 3)  # a batch per file: more than one batch
    started: list[worker.TermsWorker] = []

    class Watched(worker.TermsWorker):
        def __init__(self, database_url: str, fallback: RelatedEngine) -> None:
            started.append(self)
            super().__init__("nosuchdb://" if worker_fails else database_url, fallback)

    monkeypatch.setattr(worker, "TermsWorker", Watched)
    caplog.set_level(logging.INFO, logger="kabar.related")
    report = ingest.ingest_path(config, store, tmp_path / "json", "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 12 and len(started) == 1
    assert stored_terms(store) == 12
    assert ("terms worker failed" in caplog.text) is worker_fails
    engine = RelatedEngine.open(config, store)
    engine.load()
    assert len(engine.index) == 12 and "terms are missing" not in caplog.text  # all stored
