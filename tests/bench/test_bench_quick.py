"""Every bench script runs: each one in a subprocess with --quick (small sizes, seconds),
so an API change that breaks a bench fails here, not when someone next measures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# bench/smtp_sink.py is not a bench: the delivery benches start it as their SMTP server.
HELPERS = {"smtp_sink.py"}
# A line each script prints only once it has measured something.
FIGURES = {
    "api.py": r"api end to end: [\d,]+ articles in [\d.]+ s, [\d,]+ articles/s",
    "bounces.py": r"bounces: [\d,]+ messages in [\d.]+ s, [\d,]+ msg/s",
    "deliver.py": r"kabar end to end: [\d,]+ msg/s",
    "distributed.py": r"embedded: [\d.]+ s, [\d,]+ msg/s",
    "feeds.py": r"incremental build after 1 new article: \d+ ms",
    "ingest.py": r"throughput: +[\d,]+ articles/s",
    "ingest_memory.py": r"articles\.jsonl +[\d.]+ MiB +peak +\d+ MiB",
    "related_quality.py": r"with the near-copy cut +blocks shown \d+",
    "related_speed.py": r"related block, \d+ blocks .* p95 [\d.]+ ms",
    "render.py": r"messages/s per core \(CPU time\) +[\d,]+",
}
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if path.name not in HELPERS)


def test_every_bench_script_is_covered() -> None:
    assert set(SCRIPTS) == set(FIGURES), "add the new bench script's figure line to FIGURES"


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_runs_quick(script: str, tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH / script), "--quick"]
    if script == "distributed.py":
        database = os.environ.get("KABAR_TEST_DATABASE_URL")
        if not database:
            pytest.skip("bench/distributed.py needs PostgreSQL (KABAR_TEST_DATABASE_URL)")
        command += ["--database-url", database]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KABAR_")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(FIGURES[script], done.stdout), done.stdout[-3000:]
