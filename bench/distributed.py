"""Distributed delivery: one issue sent by the embedded mode and by 1, 2 and 4 workers.

The issue of bench/deliver.py (12 items) goes to N subscribers through an aiosmtpd sink
in another process on 127.0.0.1, once per mode, each run in a fresh PostgreSQL schema
filled the same way:

- embedded: `kabar send harian --now` sends it in one process (engine.mode: embedded);
- dramatiq: W `kabar worker` processes serve a Redis queue of their own and `kabar send
  harian --now` is the coordinator: it queues the chunks and exits once the ledger says
  the issue is sent. The workers start (and say they serve the queue) before it does.

Each run is timed from the start of `kabar send` to its exit and counted by the sink;
printed: seconds and messages per second per mode with the load average around it, then
a table, and per worker the chunks and messages it sent and any warning or error it
logged. After the embedded run, bench/deliver.py's raw aiosmtplib loop sends that issue's
message to the sink: the most the sink takes, the ceiling of every mode. The SMTP rate
limit is set far above what can be reached, so it is not what limits; the coordinator
looks at the ledger every 5 seconds, so a run may end up to 5 seconds after its last
message.

On a 2-core machine the sink, PostgreSQL, Redis, the coordinator and the workers share
the two cores: more workers than cores measure the contention, not the scaling that
workers on machines of their own would give.

    .venv/bin/python bench/distributed.py [--subscribers 50000] [--workers 1,2,4]
        [--connections 4] [--database-url postgresql://postgres@127.0.0.1:5432/test]
        [--broker-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deliver import (
    SECRET,
    RawLoop,
    Sink,
    fill_store,
    machine,
    prepared_bytes,
    run_kabar,
    write_project,
)  # fmt: skip

READY_TIMEOUT = 60.0  # seconds for a worker to start serving its queue
STOP_TIMEOUT = 120.0  # seconds for a worker to finish after SIGTERM
CEILING_MESSAGES = 5000  # sent by the raw loop to measure what the sink takes


@dataclass
class Run:
    label: str
    seconds: float
    delivered: int
    load: tuple[float, float]  # 1-minute load average before and after
    workers: list[str] = field(default_factory=list)  # one line per worker

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds


# --- the machine, the database, the queue ---------------------------------------------------


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A new schema, dropped afterwards; yields a URL whose search_path is that schema."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def forget_queue(broker_url: str, queue: str) -> None:
    """Delete the queue's Redis keys (messages, delay and dead-letter queues, acks)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        for pattern in (f"dramatiq:{queue}*", f"dramatiq:__acks__.*.{queue}*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def write_config(folder: Path, port: int, connections: int, database: str, engine: str) -> Path:
    """bench/deliver.py's project, on `database`, with the given engine section."""
    config_path = write_project(folder, port, connections)
    text = config_path.read_text(encoding="utf-8")
    sqlite = 'storage: {database: "sqlite:///kabar.db"}'
    assert sqlite in text and "rate_per_second: 1000000" in text
    text = text.replace(sqlite, f'storage: {{database: "{database}"}}')
    config_path.write_text(f"{text}engine: {engine}\n", encoding="utf-8")
    return config_path


# --- the workers ---------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"a worker exited at start:\n{self.log.read_text(encoding='utf-8')}")
        return "worker: serving queue" in self.log.read_text(encoding="utf-8")

    def report(self) -> str:
        """Chunks and messages sent, and the log's warnings and errors but the SIGTERM one."""
        lines = self.log.read_text(encoding="utf-8").splitlines()
        chunks = sum(1 for line in lines if " chunk=" in line)
        sent = sum(int(n) for line in lines for n in re.findall(r" sent=(\d+)", line))
        odd = [
            line
            for line in lines
            if " INFO " not in line and "SIGTERM: finishing the sends in flight" not in line
        ]
        more = [f"… and {len(odd) - 20} more lines"] if len(odd) > 20 else []
        summary = f"{chunks} chunks, {sent:,} sent, exit status {self.process.returncode}"
        return "\n      ".join([summary, *odd[:20], *more])


def start_workers(config_path: Path, count: int) -> list[Worker]:
    env = {**os.environ, "KABAR_SECRET": SECRET}
    workers = []
    for n in range(count):
        log = config_path.parent / f"worker{n}.log"
        with log.open("wb") as output:
            command = [sys.executable, "-m", "kabar", "-c", str(config_path), "worker"]
            process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        workers.append(Worker(process, log))
    deadline = time.monotonic() + READY_TIMEOUT
    while not all(worker.ready() for worker in workers):
        if time.monotonic() > deadline:
            raise SystemExit(f"the workers did not start within {READY_TIMEOUT:.0f} s")
        time.sleep(0.1)
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


# --- one run ---------------------------------------------------------------------------------


def run_mode(args: argparse.Namespace, sink: Sink, folder: Path, workers: int) -> Run:
    """One issue to args.subscribers in a fresh schema: embedded when workers == 0."""
    label = f"{workers} worker{'s' * (workers > 1)}" if workers else "embedded"
    queue = f"kabar-bench-{uuid.uuid4().hex[:12]}"
    engine = (
        f'{{mode: dramatiq, broker_url: "{args.broker_url}", queue: {queue}, resubmit_after: 2m}}'
        if workers
        else "{mode: embedded}"
    )
    folder.mkdir()
    with postgres_schema(args.database_url) as database:
        config_path = write_config(folder, sink.port, args.connections, database, engine)
        started = time.perf_counter()
        fill_store(config_path, args.subscribers)
        print(f"{label}: setup in {time.perf_counter() - started:.1f} s", flush=True)
        running: list[Worker] = []
        try:
            running = start_workers(config_path, workers) if workers else []
            before, load = sink.count(), os.getloadavg()[0]
            seconds, _, _ = run_kabar(config_path)
            delivered = sink.count() - before
            run = Run(label, seconds, delivered, (load, os.getloadavg()[0]))
        finally:
            stop_workers(running)
            if workers:
                forget_queue(args.broker_url, queue)
        run.workers = [worker.report() for worker in running]
        print_run(run, args.subscribers)
        if not workers:
            print_ceiling(config_path, sink, args.connections, args.subscribers)
    return run


def print_ceiling(config_path: Path, sink: Sink, connections: int, subscribers: int) -> None:
    """What the sink takes of this issue's message from a raw aiosmtplib loop."""
    payload = prepared_bytes(config_path)
    assert payload is not None, "the embedded run left no rendered issue"
    message = payload[0]
    count = min(subscribers, CEILING_MESSAGES)
    baseline = RawLoop(sink.port, message, connections)
    seconds = baseline.send(count)
    baseline.close()
    print(
        f"sink ceiling: a raw aiosmtplib loop sends it {count / seconds:,.0f} msg/s "
        f"({len(message):,}-byte message, {connections} connections)",
        flush=True,
    )


def print_run(run: Run, subscribers: int) -> None:
    short = "" if run.delivered == subscribers else f" (the sink got {run.delivered:,})"
    load = f"load average {run.load[0]:.1f} before, {run.load[1]:.1f} after"
    print(f"{run.label}: {run.seconds:.1f} s, {run.rate:,.0f} msg/s{short}; {load}", flush=True)
    for n, line in enumerate(run.workers):
        print(f"    worker {n}: {line}", flush=True)


def print_table(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    print(f"{args.subscribers:,} subscribers, 12-item issue, {args.connections} SMTP connections")
    print(f"{'mode':<12} {'seconds':>9} {'msg/s':>8} {'vs embedded':>12}")
    for run in runs:
        ratio = run.rate / runs[0].rate
        print(f"{run.label:<12} {run.seconds:>9.1f} {run.rate:>8,.0f} {ratio:>11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections per sender")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--quick", action="store_true", help="500 subscribers, 1 worker: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.workers = 500, "1"
    counts = [int(n) for n in args.workers.split(",") if n.strip()]

    print(f"machine: {machine()}", flush=True)
    sink = Sink()
    folder = Path(tempfile.mkdtemp(prefix="kabar-bench-"))
    try:
        runs = [run_mode(args, sink, folder / f"run{i}", n) for i, n in enumerate([0, *counts])]
    finally:
        sink.close()
        shutil.rmtree(folder, ignore_errors=True)
    print_table(runs, args)


if __name__ == "__main__":
    main()
