"""The scheduler with a controlled clock: catch-up after downtime, the DST double fire,
max_lateness, one scheduler per database, and the APScheduler wiring."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import Config, CronSchedule, IntervalSchedule
from kabar.ledger import Ledger
from kabar.schedule import Scheduler, fire_times, period_of, trigger_for
from kabar.store import Store

from ..support.delivery_setup import DIGEST, SECRET, prepare_store
from ..support.project import WriteConfig

JAKARTA = ZoneInfo("Asia/Jakarta")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Jobs:
    """Records what the scheduler asks for (the real jobs are tested elsewhere)."""

    def __init__(self, *, changes: bool = False) -> None:
        self.ingested: list[str] = []
        self.feeds: list[str] = []
        self.started: list[str] = []
        self.changes = changes  # whether each ingest stores something new

    async def ingest(self, source_id: str) -> bool:
        self.ingested.append(source_id)
        return self.changes

    async def build_feed(self, feed_id: str) -> None:
        self.feeds.append(feed_id)

    def start_issue(self, key: str) -> None:
        self.started.append(key)


def scheduled_config(write_config: WriteConfig, database_url: str, **schedule: Any) -> Config:
    digest = {**DIGEST, "schedule": {"cron": "0 7 * * *", "timezone": "Asia/Jakarta", **schedule}}
    path = write_config(storage={"database": database_url, "feeds": "public/"}, digests=[digest])
    return config_module.load(path)


def scheduler_for(
    config: Config, store: Store, clock: Clock, owner: str = "test"
) -> tuple[Scheduler, Jobs]:
    jobs = Jobs()
    return Scheduler(config, store.engine, jobs, owner=owner, clock=clock), jobs


def tick_digest(scheduler: Scheduler) -> Any:
    [job] = [job for job in scheduler.jobs if job.kind == "digest"]
    return asyncio.run(scheduler.tick(job))


def states(store: Store) -> dict[str, str]:
    return {issue.key: issue.state for issue in Ledger(store.engine).issues()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_periods_follow_the_schedule_and_its_time_zone() -> None:
    moment = at("2026-11-27T01:30:00+00:00")
    daily = CronSchedule(cron="0 7 * * *")
    assert period_of(daily, JAKARTA, moment) == "2026-11-27"
    assert period_of(daily, ZoneInfo("America/Los_Angeles"), moment) == "2026-11-26"
    assert period_of(CronSchedule(cron="0 */6 * * *"), JAKARTA, moment) == "2026-11-27T08:30"
    assert period_of(CronSchedule(cron="0 7 * * 1"), JAKARTA, moment) == "2026-11-27"
    assert (
        period_of(IntervalSchedule(every=timedelta(hours=6)), JAKARTA, moment) == "2026-11-27T08:30"
    )
    assert period_of(IntervalSchedule(every=timedelta(days=1)), JAKARTA, moment) == "2026-11-27"
    assert period_of(None, JAKARTA, moment) == "2026-11-27"


def test_the_dst_fall_back_double_fire_makes_one_issue(
    write_config: WriteConfig, database_url: str
) -> None:
    config = scheduled_config(
        write_config, database_url, cron="30 2 * * *", timezone="Europe/Berlin",
        max_lateness="1h",
    )  # fmt: skip
    berlin = ZoneInfo("Europe/Berlin")
    fires = fire_times(
        trigger_for(config.digests[0].schedule, berlin),  # type: ignore[arg-type]
        at("2025-10-25T12:00:00+00:00"),
        at("2025-10-26T12:00:00+00:00"),
    )
    assert [f.astimezone(UTC).isoformat() for f in fires] == [
        "2025-10-26T00:30:00+00:00",  # 02:30 CEST
        "2025-10-26T01:30:00+00:00",  # 02:30 CET, an hour later: APScheduler fires twice
    ]
    clock = Clock(at("2025-10-26T00:30:00+00:00"))
    with Store.open(config.database_url) as store:
        scheduler, _jobs = scheduler_for(config, store, clock)
        first = tick_digest(scheduler)
        clock.now = at("2025-10-26T01:30:00+00:00")
        second = tick_digest(scheduler)
        assert first.issues == second.issues == ["harian:pembaca:2025-10-26"]
        assert states(store) == {"harian:pembaca:2025-10-26": "planned"}
        # the day after, at the usual time, a new issue
        clock.now = at("2025-10-27T01:30:00+00:00")
        tick_digest(scheduler)
        assert sorted(states(store)) == ["harian:pembaca:2025-10-26", "harian:pembaca:2025-10-27"]


@pytest.mark.parametrize(
    ("policy", "max_lateness", "expected"),
    [
        ("latest", "6h", {"25": "planned", "28": "planned"}),
        ("all", "6h", {"25": "planned", "26": "missed", "27": "missed", "28": "planned"}),
        ("all", "4d", {"25": "planned", "26": "planned", "27": "planned", "28": "planned"}),
        ("skip", "6h", {"25": "planned"}),
    ],
)
def test_catch_up_after_downtime(
    write_config: WriteConfig,
    database_url: str,
    policy: str,
    max_lateness: str,
    expected: dict[str, str],
) -> None:
    config = scheduled_config(
        write_config, database_url, catch_up=policy, max_lateness=max_lateness
    )
    clock = Clock(at("2026-11-25T07:00:30+07:00"))
    with Store.open(config.database_url) as store:
        scheduler, jobs = scheduler_for(config, store, clock)
        tick_digest(scheduler)
        clock.now = at("2026-11-28T08:00:00+07:00")  # down for three days
        report = tick_digest(scheduler)
        found = {key.rsplit("-", 1)[1]: state for key, state in states(store).items()}
        assert found == expected
        assert jobs.started == [
            f"harian:pembaca:2026-11-{day}" for day, s in sorted(expected.items()) if s == "planned"
        ]
        if policy == "latest":
            assert [m.day for m in report.superseded] == [26, 27]
        # nothing runs twice: the next tick the same morning finds nothing new
        clock.now = at("2026-11-28T08:05:00+07:00")
        assert tick_digest(scheduler).ran == []


def test_a_run_past_max_lateness_is_reported_and_not_sent(
    write_config: WriteConfig, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = scheduled_config(write_config, database_url, max_lateness="6h")
    clock = Clock(at("2026-11-26T07:00:00+07:00"))
    with Store.open(config.database_url) as store:
        scheduler, jobs = scheduler_for(config, store, clock)
        tick_digest(scheduler)
        clock.now = at("2026-11-27T14:00:00+07:00")  # seven hours late
        with caplog.at_level(logging.WARNING, logger="kabar.schedule"):
            report = tick_digest(scheduler)
        assert report.ran == [] and len(report.late) == 1
        assert "is 7h00m late, past max_lateness 6h00m: not sent" in caplog.text
        issue = Ledger(store.engine).issue("harian:pembaca:2026-11-27")
        assert issue is not None and issue.state == "missed"
        assert issue.detail == "7h00m late, past max_lateness 6h00m"
        assert jobs.started == ["harian:pembaca:2026-11-26"]  # not the late one
        assert scheduler.resume_open_issues() == ["harian:pembaca:2026-11-26"]


def test_after_downtime_each_job_logs_one_line_with_the_count_of_skipped_runs(
    write_config: WriteConfig, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        sources=[{"id": "seeds", "kind": "pages", "path": "seeds/", "every": "1m"}],
        digests=[{**DIGEST, "schedule": {"cron": "0 7 * * *", "catch_up": "all",
                                         "max_lateness": "6h"}}],
    )  # fmt: skip
    config = config_module.load(path)
    clock = Clock(at("2026-11-25T07:00:00+07:00"))
    with Store.open(config.database_url) as store:
        scheduler, jobs = scheduler_for(config, store, clock)
        asyncio.run(scheduler.run_due())
        clock.now = at("2026-11-28T08:00:00+07:00")  # down for three days and an hour
        with caplog.at_level(logging.INFO, logger="kabar.schedule"):
            asyncio.run(scheduler.run_due())
    lines = [r.getMessage() for r in caplog.records if r.name == "kabar.schedule"]
    ingest_lines = [line for line in lines if line.startswith("ingest:seeds:")]
    assert ingest_lines == [
        "ingest:seeds: 4379 runs from 2026-11-25 07:01 WIB to 2026-11-28 07:59 WIB skipped "
        "(catch_up: latest)"
    ]
    late_lines = [line for line in lines if "max_lateness" in line]
    assert late_lines == [
        "digest:harian: 2 runs from 2026-11-26 07:00 WIB to 2026-11-27 07:00 WIB are past "
        "max_lateness 6h00m: not sent"
    ]
    assert jobs.ingested == ["seeds", "seeds"]


def test_interval_jobs_run_once_per_due_tick(write_config: WriteConfig, database_url: str) -> None:
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        sources=[{"id": "seeds", "kind": "pages", "path": "seeds/", "every": "10m"}],
        feeds=[{"id": "semua", "title": "Semua", "schedule": {"every": "1h"}}],
    )
    config = config_module.load(path)
    clock = Clock(at("2026-11-27T07:00:00+07:00"))
    with Store.open(config.database_url) as store:
        scheduler, jobs = scheduler_for(config, store, clock)
        assert [job.id for job in scheduler.jobs] == ["ingest:seeds", "feed:semua"]
        for minutes in (0, 5, 9, 10, 45):
            clock.now = at("2026-11-27T07:00:00+07:00") + timedelta(minutes=minutes)
            for job in scheduler.jobs:
                asyncio.run(scheduler.tick(job))
    assert jobs.ingested == ["seeds", "seeds", "seeds"]  # 07:00, 07:10, 07:45 (once for 3 due)
    assert jobs.feeds == ["semua"]


def test_an_ingest_that_changes_articles_rebuilds_every_feed_of_the_source(
    write_config: WriteConfig, database_url: str
) -> None:
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        sources=[
            {"id": "seeds", "kind": "pages", "path": "seeds/", "every": "10m"},
            {"id": "wire", "kind": "json", "path": "wire/", "every": "10m"},
        ],
        feeds=[
            {"id": "semua", "title": "Semua", "schedule": {"every": "1h"}},
            {"id": "rubrik", "title": "Rubrik", "sources": ["seeds"], "split_by": "section"},
            {"id": "kawat", "title": "Kawat", "sources": ["wire"]},
        ],
    )
    config = config_module.load(path)
    clock = Clock(at("2026-11-27T07:00:00+07:00"))
    with Store.open(config.database_url) as store:
        jobs = Jobs(changes=True)
        scheduler = Scheduler(config, store.engine, jobs, owner="test", clock=clock)
        [ingest_seeds] = [job for job in scheduler.jobs if job.id == "ingest:seeds"]
        asyncio.run(scheduler.tick(ingest_seeds))
        assert jobs.feeds == ["semua", "rubrik"]  # not kawat, which shows only wire
        jobs.changes, jobs.feeds = False, []
        clock.now += timedelta(minutes=10)
        asyncio.run(scheduler.tick(ingest_seeds))
        assert jobs.ingested == ["seeds", "seeds"] and jobs.feeds == []  # nothing changed


def test_run_once_rebuilds_a_feed_without_a_schedule(
    write_config: WriteConfig, project: Path
) -> None:
    path = write_config(
        sources=[{"id": "seeds", "kind": "pages", "path": "seeds/", "every": "10m"}],
        feeds=[{"id": "rubrik", "title": "Rubrik", "formats": ["rss"]}],
    )
    result = CliRunner().invoke(cli, ["-q", "-c", str(path), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "<item>" in (project / "public" / "rubrik.rss.xml").read_text(encoding="utf-8")


def test_check_warns_about_what_no_job_runs(write_config: WriteConfig) -> None:
    path = write_config(
        sources=[
            {"id": "seeds", "kind": "pages", "path": "seeds/", "every": "10m"},
            {"id": "arsip", "kind": "pages", "path": "seeds/"},
        ],
        feeds=[
            {"id": "semua", "title": "Semua"},
            {"id": "lama", "title": "Lama", "sources": ["arsip"]},
            {"id": "jam", "title": "Jam", "sources": ["arsip"], "schedule": {"every": "1h"}},
        ],
        digests=[DIGEST, {**DIGEST, "id": "pagi", "schedule": {"cron": "0 7 * * *"}}],
    )
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert [line.split(": ", 2)[1] for line in warnings] == [
        "sources.1.id", "feeds.1.id", "digests.0.id",
    ]  # fmt: skip
    assert "no job ingests source 'arsip'" in warnings[0]
    assert "no job builds feed 'lama'" in warnings[1]
    assert "no job sends digest 'harian'" in warnings[2]
    assert warnings[0].startswith(f"{path}:") and ": warning: " in warnings[0]
    assert result.stdout.startswith(f"{path}: ok:")


def test_one_scheduler_per_database(write_config: WriteConfig, database_url: str) -> None:
    config = scheduled_config(write_config, database_url)
    clock = Clock(at("2026-11-27T07:00:00+07:00"))
    with Store.open(config.database_url) as store:
        first, _ = scheduler_for(config, store, clock, owner="host-a:1")
        second, _ = scheduler_for(config, store, clock, owner="host-b:2")
        assert first.acquire() and not second.acquire()
        assert second.holder().startswith("host-a:1 (lease until ")
        first.release()
        assert second.acquire()


def test_the_daemon_wakes_jobs_and_a_second_one_waits(
    write_config: WriteConfig, database_url: str
) -> None:
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        sources=[{"id": "seeds", "kind": "pages", "path": "seeds/", "every": "1s"}],
    )
    config = config_module.load(path)

    async def both() -> tuple[Jobs, Jobs]:
        with Store.open(config.database_url) as store:
            real_clock = lambda: datetime.now(UTC)  # noqa: E731
            first, first_jobs = scheduler_for(config, store, real_clock, owner="a")  # type: ignore[arg-type]
            second, second_jobs = scheduler_for(config, store, real_clock, owner="b")  # type: ignore[arg-type]
            stop_first, stop_second = asyncio.Event(), asyncio.Event()
            tasks = [
                asyncio.create_task(first.serve(stop_first)),
                asyncio.create_task(second.serve(stop_second)),
            ]
            await asyncio.sleep(3.2)
            waited = list(second_jobs.ingested)
            stop_first.set()
            stop_second.set()
            await asyncio.gather(*tasks)
            assert waited == []  # the second waited for the lease
            return first_jobs, second_jobs

    first_jobs, _ = asyncio.run(both())
    assert len(first_jobs.ingested) >= 3  # at start, then woken every second


def test_run_once_sends_what_is_due_and_refuses_a_second_scheduler(
    write_config: WriteConfig, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    path = write_config(
        digests=[{**DIGEST, "schedule": {"cron": "* * * * *", "max_lateness": "1h"}}],
        web={"base_url": "https://kabar.example.id"},
    )
    config = config_module.load(path)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 3)
    result = CliRunner().invoke(cli, ["-q", "-c", str(path), "run", "--once"])
    assert result.exit_code == 0, result.output
    with Store.open(config.database_url) as store:
        [issue] = Ledger(store.engine).issues()
        assert issue.state == "sent" and issue.key.startswith("harian:pembaca:20")
        assert "T" in issue.period  # a per-minute schedule keys on the local minute
        assert Ledger(store.engine).acquire_lease(
            "scheduler", "elsewhere:1", ttl=timedelta(minutes=1), now=datetime.now(UTC)
        )
    assert len(list((project / "outbox" / "new").iterdir())) == 3
    result = CliRunner().invoke(cli, ["-c", str(path), "run", "--once"])
    assert result.exit_code == 1
    assert "another scheduler runs on this database: elsewhere:1" in result.stderr
