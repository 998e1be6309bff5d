"""`kabar send`, `kabar status`, `kabar publish` and `kabar run` as an admin uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kabar.cli import cli
from kabar.config import Config
from kabar.deliver.send import Sender
from kabar.deliver.transport import FunctionTransport
from kabar.ledger import Ledger, ResultWriter
from kabar.store import Store

from ..support.delivery_setup import SECRET, delivery_config, prepare_store, send_now
from ..support.project import WriteConfig


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


def kabar(config: Config, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-q", "-c", str(config.path), *args])
    return result.exit_code, result.stdout, result.stderr


def outbox(project: Path) -> list[Path]:
    folder = project / "outbox" / "new"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_send_now_makes_one_issue_per_period_and_resumes_it(
    write_config: WriteConfig, project: Path, secret: None
) -> None:
    config = delivery_config(write_config)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 5)
    code, out, _ = kabar(config, "send", "harian", "--now", "--json")
    assert code == 0
    first = json.loads(out)
    assert (first["state"], first["sent"], first["audience"]) == ("sent", 5, 5)
    assert len(outbox(project)) == 5

    code, out, _ = kabar(config, "send", "harian", "--now", "--json")
    again = json.loads(out)
    assert code == 0 and again["issue"] == first["issue"] and again["sent"] == 5
    assert len(outbox(project)) == 5  # the same issue: nothing sent twice
    code, out, _ = kabar(config, "status", "--json")
    assert [json.loads(line)["issue"] for line in out.splitlines()] == [first["issue"]]
    # The sent issue is on the web archive, in feed storage, with its issues feed.
    archive = project / "public" / "archive" / "harian"
    page = archive / f"{first['issue'].replace(':', '-')}.html"
    assert page.exists() and (archive / "index.html").exists()
    assert first["issue"].replace(":", "-") in (archive / "issues.atom.xml").read_text("utf-8")


def test_dry_run_writes_and_sends_nothing(
    write_config: WriteConfig, project: Path, secret: None
) -> None:
    config = delivery_config(write_config)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 4)
    code, out, _ = kabar(config, "send", "harian", "--now", "--dry-run")
    preview = json.loads(out)
    assert code == 0
    assert preview["state"] == "(new)" and preview["audience"] == 4
    assert preview["articles"] > 0 and preview["subject"].startswith("Kabar pagi, ")
    assert outbox(project) == []
    with Store.open(config.database_url) as store:
        assert Ledger(store.engine).issues() == []


def test_send_without_now_says_when_nothing_is_due(
    write_config: WriteConfig, project: Path, secret: None
) -> None:
    config = delivery_config(write_config)  # no schedule
    code, out, _ = kabar(config, "send", "harian")
    assert code == 0 and "has no schedule; --now sends the current issue" in out
    late = delivery_config(
        write_config,
        digest={"schedule": {"cron": "0 0 1 1 *", "timezone": "UTC", "max_lateness": "1h"}},
    )
    code, out, _ = kabar(late, "send", "harian")
    assert code == 0 and "is past max_lateness, so none is due" in out
    assert outbox(project) == []


def test_an_empty_issue_is_skipped(write_config: WriteConfig, project: Path, secret: None) -> None:
    config = delivery_config(write_config, digest={"window": "1h", "skip_if_empty": True})
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 2)  # the seed's articles are years old
    code, out, _ = kabar(config, "send", "harian", "--now")
    assert code == 0 and ": skipped (no new articles)" in out
    assert outbox(project) == []


def test_unknown_names_are_clear_errors(write_config: WriteConfig, secret: None) -> None:
    config = delivery_config(write_config)
    code, _, err = kabar(config, "send", "weekly", "--now")
    assert code == 2 and "unknown digest id 'weekly' (configured: harian)" in err
    code, _, err = kabar(config, "send", "--resume", "harian:pembaca:1999-01-01")
    assert code == 2 and "--resume: no issue 'harian:pembaca:1999-01-01'" in err


def test_publish_ingests_then_delivers_the_current_issue(
    write_config: WriteConfig, project: Path, secret: None
) -> None:
    (project / "pembaca.csv").write_text("email\na@example.com\nb@example.com\n", "utf-8")
    config = delivery_config(write_config)
    path = write_config(
        digests=[{**config.digests[0].model_dump(by_alias=True, exclude_none=True)}],
        lists=[{"id": "pembaca", "from": "Kabar <redaksi@kabar.example.id>",
                "import_from": "pembaca.csv"}],
        web={"base_url": "https://kabar.example.id"},
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["-q", "-c", str(path), "publish"])
    assert result.exit_code == 0, result.output
    assert "seeds: 1 file" in result.stdout
    assert result.stdout.strip().endswith("sent: 2 audience, 2 sent")
    assert len(outbox(project)) == 2


def test_backoff_grows_exponentially_with_jitter_and_a_cap(write_config: WriteConfig) -> None:
    config = delivery_config(write_config, retry_backoff="1s", retry_backoff_max="10s")

    async def never(*_: object) -> object:
        raise AssertionError

    with Store.open(config.database_url) as store:
        sender = Sender(config, Ledger(store.engine), FunctionTransport(never), secret=b"k")  # type: ignore[arg-type]
        waits = {n: [sender.backoff(n) for _ in range(200)] for n in (1, 2, 3, 5, 8)}
    for attempts, ceiling in ((1, 1), (2, 2), (3, 4), (5, 10), (8, 10)):
        seconds = [w / timedelta(seconds=1) for w in waits[attempts]]
        assert ceiling / 2 <= min(seconds) and max(seconds) <= ceiling
        assert len(set(seconds)) > 150  # jittered, so retries do not arrive in lockstep


def test_the_daemon_sends_what_is_due_and_a_second_one_waits(
    write_config: WriteConfig, project: Path
) -> None:
    config = delivery_config(
        write_config, digest={"schedule": {"cron": "* * * * *", "max_lateness": "1h"}}
    )
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 3)
    env = {**os.environ, "KABAR_SECRET": SECRET}
    command = [sys.executable, "-m", "kabar", "-c", str(config.path), "run"]
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    second_log = project / "second.log"
    try:
        deadline = time.monotonic() + 30
        while len(outbox(project)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        # The cron fires every minute: on a slow machine the next minute's issue may start
        # before this line, so the first issue's three are a floor, not the count.
        assert len(outbox(project)) >= 3
        with second_log.open("w") as handle:
            second = subprocess.Popen(command, env=env, stderr=handle)
            try:
                while "; waiting" not in second_log.read_text() and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=30)
        assert "another scheduler runs on this database" in second_log.read_text()
    finally:
        first.send_signal(signal.SIGTERM)
        _, log = first.communicate(timeout=30)
    assert first.returncode == 0, log
    assert "scheduler: 1 jobs: digest:harian" in log
    with Store.open(config.database_url) as store:
        assert Ledger(store.engine).lease_holder("scheduler") is None  # released on exit


def test_a_result_the_ledger_cannot_commit_stops_the_send_and_loses_nothing(
    write_config: WriteConfig, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More claimed than one lane holds, and the first commit fails: the send stops with
    the error instead of waiting on a dead lane, and the next run sends what is left."""
    config = delivery_config(write_config, lease="1s")
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 40)
        record = ResultWriter.record

        def disk_full(self: ResultWriter, *args: object, **kwargs: object) -> int:
            raise OSError("disk full")

        monkeypatch.setattr(ResultWriter, "record", disk_full)
        with pytest.raises(OSError, match="disk full"):
            send_now(config, store)
        assert len(outbox(project)) == 1  # one message out, its result never committed
        monkeypatch.setattr(ResultWriter, "record", record)
        time.sleep(1)  # the lease on the unrecorded one runs out
        issue = send_now(config, store)
        assert issue is not None and issue.state == "sent"
        counts = Ledger(store.engine).counts([issue.key])[issue.key]
    assert counts.sent == 40
    # The unrecorded one went out again under its own Message-ID: the outbox, named by
    # Message-ID, holds each subscriber's message once.
    assert len(outbox(project)) == 40
    assert not [t for t in threading.enumerate() if t.name == "kabar-ledger"]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_results_commit_on_a_thread_that_does_not_preempt_the_sending_loop(
    write_config: WriteConfig, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = delivery_config(write_config)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 12)
        record = ResultWriter.record
        policies: list[int] = []

        def noting_the_policy(self: ResultWriter, *args: object, **kwargs: object) -> int:
            policies.append(os.sched_getscheduler(0))
            return record(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(ResultWriter, "record", noting_the_policy)
        issue = send_now(config, store)
    assert issue is not None and issue.state == "sent"
    assert policies and set(policies) == {os.SCHED_BATCH}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the sending thread is left as it was
