"""A manual issue never swallows a scheduled one: `kabar publish` at 00:42 WIB sends an
issue of its own, and `kabar run --once` at 07:10 still sends the 07:00 issue, with only
what the 00:42 one did not carry (or nothing at all, with skip_if_empty)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.cli.app import App
from kabar.cli.delivery import publish_digests
from kabar.config import Config
from kabar.ingest import ingest_source
from kabar.ledger import Ledger
from kabar.runtime import run_scheduler
from kabar.store import Store
from kabar.subscribers import Subscribers

from ..support.delivery_setup import SECRET
from ..support.project import WriteConfig
from .test_schedule import Clock, at

MANUAL = "harian:pembaca:2026-12-06:manual"
SCHEDULED = "harian:pembaca:2026-12-06"


def article(n: int, published: str) -> dict[str, Any]:
    return {
        "url": f"https://kabar.example.id/read/{n}",
        "title": f"Berita nomor {n} tentang banjir di kota {n}",
        "body": f"Isi berita nomor {n}. Banjir melanda kota {n} sejak pagi.",
        "published": published,
    }


def wire_config(
    write_config: WriteConfig, project: Path, database_url: str, **digest: Any
) -> Config:
    (project / "wire").mkdir()
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        sources=[{"id": "wire", "kind": "json", "path": "wire/"}],
        digests=[{
            "id": "harian", "list": "pembaca", "sources": ["wire"], "subject": "Kabar {date}",
            "window": "24h", "skip_if_empty": True, "related": {"per_item": 0},
            "schedule": {"cron": "0 7 * * *", "timezone": "Asia/Jakarta", "max_lateness": "6h"},
            **digest,
        }],
        web={"base_url": "https://kabar.example.id"},
    )  # fmt: skip
    return config_module.load(path)


def add_articles(config: Config, store: Store, name: str, *items: dict[str, Any]) -> None:
    (config.resolve("wire") / name).write_text(json.dumps(list(items)), encoding="utf-8")
    ingest_source(config, store, config.source("wire"))


def carried(store: Store, key: str) -> list[str]:
    issue = Ledger(store.engine).issue(key)
    assert issue is not None and issue.prepared is not None, key
    return sorted(issue.prepared["article_ids"])


def run_once(config: Config, clock: Clock) -> bool:
    """`kabar run --once` at the clock's time."""
    with Store.open(config.database_url) as store:
        return asyncio.run(run_scheduler(config, store, once=True, clock=clock))


def outbox_count(project: Path) -> int:
    return len(list((project / "outbox" / "new").iterdir()))


def one_reader_one_evening_article(config: Config) -> None:
    with Store.open(config.database_url) as store:
        Subscribers(store.engine).add("pembaca", "ani@example.com")
        add_articles(config, store, "malam.json", article(1, "2026-12-05T20:00:00+07:00"))


def publish(config: Config, clock: Clock) -> None:
    """`kabar publish` at the clock's time."""
    app = App(str(config.path))
    try:
        assert publish_digests(app, clock=clock)
    finally:
        app.close()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


@pytest.mark.usefixtures("secret")
def test_a_manual_issue_before_the_slot_leaves_the_scheduled_one_its_own_key(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = wire_config(write_config, project, database_url)
    clock = Clock(at("2026-12-06T00:42:00+07:00"))
    with Store.open(config.database_url) as store:
        Subscribers(store.engine).add("pembaca", "ani@example.com", name="Ani")
        Subscribers(store.engine).add("pembaca", "budi@example.com", name="Budi")
        add_articles(
            config, store, "malam.json",
            article(1, "2026-12-05T20:00:00+07:00"), article(2, "2026-12-05T23:30:00+07:00"),
        )  # fmt: skip
        early = {a.id for a in store.articles()}

    app = App(str(config.path))
    try:
        assert publish_digests(app, clock=clock)  # `kabar publish` at 00:42 WIB
    finally:
        app.close()
    with Store.open(config.database_url) as store:
        assert {i.key: i.state for i in Ledger(store.engine).issues()} == {MANUAL: "sent"}
        assert carried(store, MANUAL) == sorted(early)
        add_articles(config, store, "subuh.json", article(3, "2026-12-06T04:00:00+07:00"))
        late = {a.id for a in store.articles()} - early
    assert outbox_count(project) == 2

    clock.now = at("2026-12-06T07:10:00+07:00")
    assert run_once(config, clock)
    with Store.open(config.database_url) as store:
        states = {i.key: i.state for i in Ledger(store.engine).issues()}
        assert states == {MANUAL: "sent", SCHEDULED: "sent"}
        assert carried(store, SCHEDULED) == sorted(late)  # only the 04:00 article
    assert outbox_count(project) == 4

    result = CliRunner().invoke(cli, ["-c", str(config.path), "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["issue"], r["state"], r["sent"]) for r in rows] == [
        (SCHEDULED, "sent", 2), (MANUAL, "sent", 2),
    ]  # fmt: skip


@pytest.mark.usefixtures("secret")
def test_the_scheduled_issue_is_skipped_when_the_manual_one_carried_everything(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = wire_config(write_config, project, database_url)
    clock = Clock(at("2026-12-06T00:42:00+07:00"))
    one_reader_one_evening_article(config)
    publish(config, clock)
    clock.now = at("2026-12-06T01:30:00+07:00")  # publish again: the same manual issue
    publish(config, clock)
    clock.now = at("2026-12-06T07:10:00+07:00")
    assert run_once(config, clock)
    with Store.open(config.database_url) as store:
        states = {i.key: i.state for i in Ledger(store.engine).issues()}
    assert states == {MANUAL: "sent", SCHEDULED: "skipped"}
    assert outbox_count(project) == 1


@pytest.mark.usefixtures("secret")
def test_repeat_articles_lets_the_scheduled_issue_carry_everything_in_its_window(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = wire_config(write_config, project, database_url, repeat_articles=True)
    clock = Clock(at("2026-12-06T00:42:00+07:00"))
    one_reader_one_evening_article(config)
    publish(config, clock)
    clock.now = at("2026-12-06T07:10:00+07:00")
    assert run_once(config, clock)
    with Store.open(config.database_url) as store:
        assert carried(store, SCHEDULED) == carried(store, MANUAL)


@pytest.mark.usefixtures("secret")
def test_a_manual_issue_after_the_slot_is_the_scheduled_issue(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = wire_config(write_config, project, database_url)
    clock = Clock(at("2026-12-06T08:00:00+07:00"))
    one_reader_one_evening_article(config)
    publish(config, clock)
    with Store.open(config.database_url) as store:
        assert [i.key for i in Ledger(store.engine).issues()] == [SCHEDULED]


@pytest.mark.usefixtures("secret")
def test_the_preview_leaves_out_what_earlier_issues_carried(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = wire_config(write_config, project, database_url)
    clock = Clock(at("2026-12-06T00:42:00+07:00"))
    one_reader_one_evening_article(config)
    publish(config, clock)
    with Store.open(config.database_url) as store:
        add_articles(config, store, "subuh.json", article(3, "2026-12-06T04:00:00+07:00"))

    base = ["-c", str(config.path), "preview", "harian", "--json", "--out", str(project / "p")]
    result = CliRunner().invoke(cli, [*base, "--as-of", "2026-12-06T07:00:00+07:00"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["articles"] == 1  # the 04:00 article only
    html = (project / "p" / "issue.html").read_text(encoding="utf-8")
    assert "nomor 3" in html and "nomor 1" not in html
