"""`kabar jobs`, and `kabar run` reloading its config (SIGHUP, a changed file) while its
metrics port answers: a real daemon in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from kabar.cli import cli

from ..support.ops import CMS_FEED, CMS_SOURCE
from ..support.project import BASE_CONFIG, WriteConfig
from ..support.serving import free_port

DIGEST = {"id": "harian", "list": "pembaca", "subject": "Kabar pagi",
          "schedule": {"cron": "0 7 * * *", "timezone": "Asia/Jakarta"}}  # fmt: skip


def settings(**overrides: Any) -> dict[str, Any]:
    return {
        **BASE_CONFIG,
        "sources": [{**BASE_CONFIG["sources"][0], "every": "6h"}, CMS_SOURCE],
        "feeds": [{**CMS_FEED, "schedule": {"every": "30m"}}],
        "digests": [DIGEST],
        "storage": {"database": "sqlite:///var/kabar.db", "feeds": "public/"},
        "web": {"secret_env": "KABAR_SECRET"},
        **overrides,
    }


def write(path: Path, data: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(data, handle)


def test_jobs_lists_the_next_three_runs_in_the_job_zone_and_utc(
    write_config: WriteConfig,
) -> None:
    path = write_config(**{k: v for k, v in settings().items() if k not in BASE_CONFIG
                           or k == "sources"})  # fmt: skip
    (path.parent / "cms").mkdir()
    result = CliRunner().invoke(
        cli, ["-c", str(path), "jobs", "--json", "--as-of", "2026-12-05T01:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    jobs = {row["job"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(jobs) == {"ingest:seeds", "feed:cms", "digest:harian"}
    digest = jobs["digest:harian"]
    assert digest["schedule"] == "cron 0 7 * * * Asia/Jakarta"
    assert digest["next"] == ["2026-12-06T07:00:00+07:00", "2026-12-07T07:00:00+07:00",
                              "2026-12-08T07:00:00+07:00"]  # fmt: skip
    assert digest["next_utc"] == ["2026-12-06T00:00:00+00:00", "2026-12-07T00:00:00+00:00",
                                  "2026-12-08T00:00:00+00:00"]  # fmt: skip
    assert jobs["feed:cms"]["next_utc"][:2] == ["2026-12-05T01:30:00+00:00",
                                                 "2026-12-05T02:00:00+00:00"]  # fmt: skip
    assert digest["last_outcome"] is None
    table = CliRunner().invoke(cli, ["-c", str(path), "jobs", "--as-of", "2026-12-05T01:00Z"])
    assert "2026-12-06 07:00" in table.output and "never" in table.output

    ran = CliRunner().invoke(cli, ["-c", str(path), "run", "--once"])
    assert ran.exit_code == 0, ran.output
    after = CliRunner().invoke(cli, ["-c", str(path), "jobs", "--json"])
    outcomes = {row["job"]: row for row in map(json.loads, after.stdout.splitlines())}
    assert outcomes["ingest:seeds"]["last_outcome"] == "ok"
    assert outcomes["ingest:seeds"]["last_lag_seconds"] is not None


def wait_for(log: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = log.read_text(encoding="utf-8", errors="replace")
        if text in found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged; log:\n{log.read_text(encoding='utf-8')}")


@pytest.mark.slow
def test_run_reloads_on_a_change_and_on_sighup_and_keeps_a_bad_file_out(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(text="version: 1\n")
    write(path, settings())
    (path.parent / "cms").mkdir()
    port = free_port()
    log = tmp_path / "run.log"
    env = {**os.environ, "KABAR_SECRET": "rahasia-uji"}
    with log.open("w") as handle:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "kabar", "-c", str(path), "run", "--metrics-port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(log, "scheduler: 3 jobs")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'kabar_scheduler_lag_seconds{job="ingest:seeds"}' in metrics
        assert "# TYPE kabar_issue_deliveries gauge" in metrics

        time.sleep(0.05)  # a new modification time, even on coarse clocks
        write(path, settings(feeds=[{**CMS_FEED, "schedule": {"every": "10m"}}],
                             digests=[{**DIGEST, "id": "sore",
                                       "schedule": {"cron": "0 17 * * *"}}]))  # fmt: skip
        text = wait_for(log, "reloaded (the file changed)")
        assert "scheduler: added digest:sore: cron 0 17 * * * Asia/Jakarta" in text
        assert "scheduler: removed digest:harian" in text
        assert "scheduler: rescheduled feed:cms: every 10m" in text

        path.write_text(path.read_text(encoding="utf-8").replace("every: 10m", "every: soon"),
                        encoding="utf-8")  # fmt: skip
        text = wait_for(log, "not reloaded (the file changed)")
        assert f"{path}:" in text and ": feeds.0.schedule" in text
        assert daemon.poll() is None  # still running, on the old config

        # The same size and modification time: only SIGHUP can make it read the file.
        bad = path.stat()
        path.write_text(path.read_text(encoding="utf-8").replace("every: soon", "every: 100m"),
                        encoding="utf-8")  # fmt: skip
        os.utime(path, ns=(bad.st_atime_ns, bad.st_mtime_ns))
        assert path.stat().st_size == bad.st_size
        time.sleep(2.5)  # a poll or more: nothing happens
        assert "every 100m" not in log.read_text(encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        text = wait_for(log, "scheduler: rescheduled feed:cms: every 100m")
        assert "reloaded (SIGHUP)" in text
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
