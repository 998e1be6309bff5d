"""Distributed delivery: one issue sent by the embedded mode and by 1, 2 and 4 workers.

The issue of bench/deliver.py (12 items) goes to N subscribers through bench/smtp_sink.py
in another process on 127.0.0.1, once per mode, each run in a fresh PostgreSQL schema
filled the same way:

- embedded: `kabar send harian --now` sends it in one process (engine.mode: embedded);
- dramatiq: W `kabar worker` processes serve a Redis queue of their own and `kabar send
  harian --now` is the coordinator: it queues the chunks and exits once the ledger says
  the issue is sent. The workers start (and say they serve the queue) before it does.

With --repeat R the modes take turns R times (embedded, 1 worker, 2, 4, embedded, …), so
that a neighbour's burst of work on a shared machine does not land on one mode only; the
table gives each mode's median and every run.

Each run is timed from the start of `kabar send` to its exit and counted by the sink.
Printed per run: seconds and messages per second with the load average around it; where
the time per message went (before the first message reached the sink, between the first
and the last, after the last: the coordinator noticing the end; the sink's idle time, gaps
of more than 20 ms between two messages, which is where a worker waits between chunks;
the SMTP connections opened); the CPU time per message of each process (`kabar send` and
each worker) from the first message to the last, from /proc; and per worker the chunks
and messages it sent and any warning or error it logged. After the first embedded run,
the parts that cost per event are measured apart: opening one SMTP connection, taking
one rate-limit slot from Redis as a worker does, loading the issue's row and its rendered
variants; and bench/deliver.py's raw aiosmtplib loop sends that issue's message to the
sink: the most the sink takes, the ceiling of every mode. The SMTP rate limit is set far
above what can be reached, so it only costs its round trips. Last, a table of the parts
in ms per message for each mode. To see before and after, run the same bench on both
versions of kabar (the bench's own files do not change what it measures).

On a 2-core machine the sink, PostgreSQL, Redis, the coordinator and the workers share
the two cores: more workers than cores measure the contention, not the scaling that
workers on machines of their own would give.

    .venv/bin/python bench/distributed.py [--subscribers 50000] [--workers 1,2,4]
        [--connections 4] [--repeat 1] [--database-url postgresql://postgres@127.0.0.1:5432/test]
        [--broker-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deliver import (
    SECRET,
    RawLoop,
    Sink,
    fill_store,
    kabar_command,
    kabar_env,
    machine,
    prepared_bytes,
    write_project,
)  # fmt: skip

READY_TIMEOUT = 60.0  # seconds for a worker to start serving its queue
STOP_TIMEOUT = 120.0  # seconds for a worker to finish after SIGTERM
CEILING_MESSAGES = 5000  # sent by the raw loop to measure what the sink takes
CHUNK_SIZE = 500  # delivery.chunk_size of bench/deliver.py's project


SAMPLE_EVERY = 0.05  # seconds between looks at the sink and the processes' CPU time
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    label: str
    seconds: float
    delivered: int
    load: tuple[float, float]  # 1-minute load average before and after
    workers: list[str] = field(default_factory=list)  # one line per worker
    sink: dict[str, float] = field(default_factory=dict)  # the sink's stats of the run
    started: float = 0.0  # time.monotonic() when `kabar send` started
    ended: float = 0.0  # … and when it exited
    chunks: int = 0
    # CPU seconds per process from the first message at the sink to the last: "send" is
    # `kabar send` (embedded: all the work; dramatiq: the coordinator), then each worker.
    cpu: dict[str, float] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # messages each worker sent

    def cpu_per_message(self, name: str) -> float:
        """Milliseconds of a process's CPU time per message it sent."""
        return 1000 * self.cpu[name] / max(self.sent.get(name, self.delivered), 1)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds

    def per_message(self, seconds: float) -> float:
        """Milliseconds per delivered message."""
        return 1000 * seconds / max(self.delivered, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


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

    def sent(self) -> int:
        """Messages this worker logged as sent."""
        text = self.log.read_text(encoding="utf-8")
        return sum(int(n) for n in re.findall(r" sent=(\d+)", text))

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


def run_mode(
    args: argparse.Namespace, sink: Sink, folder: Path, workers: int, costs: dict[str, float]
) -> Run:
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
            run = send_watched(config_path, sink, label, running, args.subscribers)
        finally:
            stop_workers(running)
            if workers:
                forget_queue(args.broker_url, queue)
        run.workers = [worker.report() for worker in running]
        run.sent = {f"worker {n}": worker.sent() for n, worker in enumerate(running)}
        run.chunks = -(-args.subscribers // CHUNK_SIZE)
        print_run(run, args.subscribers)
        if not workers and not costs:
            costs.update(measure_costs(config_path, sink, args))
            print_ceiling(config_path, sink, args.connections, args.subscribers)
    return run


def send_watched(
    config_path: Path, sink: Sink, label: str, workers: list[Worker], subscribers: int
) -> Run:
    """`kabar send harian --now`, timed from its start to its exit, with the CPU time of it
    and of each worker taken when the first and the last message reach the sink."""
    sink.ask("reset")
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.Popen(kabar_command(config_path), env=kabar_env())
    pids = {"send": process.pid} | {f"worker {n}": w.process.pid for n, w in enumerate(workers)}
    at_first: dict[str, float] = {}
    at_last: dict[str, float] = {}
    while process.poll() is None:
        time.sleep(SAMPLE_EVERY)
        received = json.loads(sink.ask("stats"))["messages"]
        if received and not at_first:
            at_first = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if received >= subscribers and not at_last:
            at_last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ended = time.monotonic()
    if process.returncode != 0:
        raise SystemExit(f"kabar send failed with status {process.returncode}")
    stats = json.loads(sink.ask("stats"))
    run = Run(label, ended - started, int(stats["messages"]), (load, os.getloadavg()[0]))
    run.sink, run.started, run.ended = stats, started, ended
    if at_first and at_last:
        run.cpu = {name: at_last[name] - at_first[name] for name in pids}
    return run


# --- what each part costs, measured apart -------------------------------------------------


def measure_costs(config_path: Path, sink: Sink, args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds: opening one SMTP connection to the sink; taking one rate-limit slot
    the way a worker does (the shared limiter on Redis, at the bench's rate); loading the
    issue's ledger row, and loading its rendered variants (load_prepared)."""
    from kabar import config as config_module
    from kabar.deliver.ratelimit import SharedRateLimiter
    from kabar.digest import load_prepared
    from kabar.ledger import Ledger
    from kabar.store import Store

    config = config_module.load(config_path)
    costs = {"connect": connect_cost(sink.port)}
    key = f"kabar:bench-rate:{uuid.uuid4().hex}"
    limiter = SharedRateLimiter(args.broker_url, key, config.delivery.smtp.rate_per_second)
    costs["slot"], costs["slot_cpu"] = limiter_cost(limiter)
    with Store.open(config.database_url, run_migrations=False) as store:
        ledger = Ledger(store.engine)
        [issue] = ledger.issues()
        costs["issue_row"] = timed(lambda: ledger.issue(issue.key), 50)
        assert issue.prepared is not None
        prepared = issue.prepared
        costs["variants"] = timed(lambda: load_prepared(config, prepared), 10)
    return costs


def timed(work: Any, times: int) -> float:
    started = time.perf_counter()
    for _ in range(times):
        work()
    return 1000 * (time.perf_counter() - started) / times


def connect_cost(port: int, times: int = 50) -> float:
    """An aiosmtplib connection to the sink: connect, greeting, EHLO, QUIT."""
    import aiosmtplib

    async def connections() -> None:
        for _ in range(times):
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            await client.connect()
            await client.ehlo()
            await client.quit()

    started = time.perf_counter()
    asyncio.run(connections())
    return 1000 * (time.perf_counter() - started) / times


def limiter_cost(limiter: Any, times: int = 2000) -> tuple[float, float]:
    """Wall and CPU milliseconds per `wait()`, four waiting at once as a worker's lanes do."""

    async def lanes() -> None:
        async def lane() -> None:
            for _ in range(times // 4):
                await limiter.wait()

        await asyncio.gather(*(lane() for _ in range(4)))
        await limiter.close()

    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(lanes())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return 1000 * wall / times, 1000 * cpu / times


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
    if run.sink:
        first, last = run.sink["first"], run.sink["last"]
        print(
            f"    ms per message: {run.per_message(run.seconds):.3f} = "
            f"{run.per_message(first - run.started):.3f} before the first message + "
            f"{run.per_message(last - first):.3f} sending + "
            f"{run.per_message(run.ended - last):.3f} after the last; idle at the sink "
            f"{run.per_message(run.sink['idle']):.3f} ({run.sink['gaps']:.0f} gaps over 20 ms); "
            f"{run.sink['connections']:.0f} SMTP connections",
            flush=True,
        )
    if run.cpu:
        cpu = ", ".join(f"{name} {run.cpu_per_message(name):.3f}" for name in run.cpu)
        print(f"    CPU ms per message it sent, first to last message: {cpu}", flush=True)
    for n, line in enumerate(run.workers):
        print(f"    worker {n}: {line}", flush=True)


def print_table(runs: list[Run], args: argparse.Namespace) -> None:
    """Medians over the repeats; the ratio is to embedded's median."""
    labels = list(dict.fromkeys(run.label for run in runs))
    by_label = {label: [run for run in runs if run.label == label] for label in labels}
    base = statistics.median(run.rate for run in by_label["embedded"])
    print()
    print(
        f"{args.subscribers:,} subscribers, 12-item issue, {args.connections} SMTP connections; "
        f"median of {args.repeat} run{'s' * (args.repeat > 1)} per mode, the modes taking turns"
    )
    print(f"{'mode':<12} {'msg/s':>8} {'vs embedded':>12}  {'runs (msg/s)':<28} CPU ms/msg")
    for label, group in by_label.items():
        rate = statistics.median(run.rate for run in group)
        each = ", ".join(f"{run.rate:,.0f}" for run in group)
        print(f"{label:<12} {rate:>8,.0f} {rate / base:>11.2f}x  {each:<28} {sender_cpu(group)}")


def sender_cpu(group: list[Run]) -> str:
    """Median CPU per message of each sending process: embedded's, or each worker's."""
    names = [name for name in group[0].cpu if name != "send" or group[0].label == "embedded"]
    values = []
    for name in names:
        per_run = [run.cpu_per_message(name) for run in group if name in run.cpu]
        if per_run:
            values.append(f"{statistics.median(per_run):.3f}")
    return " / ".join(values) or "-"


def print_breakdown(runs: list[Run], costs: dict[str, float]) -> None:
    """Milliseconds per message for each part, medians over the repeats."""
    labels = list(dict.fromkeys(run.label for run in runs))
    by_label = {label: [run for run in runs if run.label == label and run.sink] for label in labels}

    def median(part: Any) -> list[str]:
        return [
            f"{statistics.median(part(run) for run in group):.3f}" if group else "-"
            for group in by_label.values()
        ]

    connect, row, variants = costs["connect"], costs["issue_row"], costs["variants"]
    rows = [
        ("whole run (wall)", median(lambda r: r.per_message(r.seconds))),
        ("before the first message", median(lambda r: r.per_message(r.sink["first"] - r.started))),
        ("after the last message", median(lambda r: r.per_message(r.ended - r.sink["last"]))),
        ("idle at the sink, gaps > 20 ms", median(lambda r: r.per_message(r.sink["idle"]))),
        (
            f"SMTP connections opened ({connect:.2f} ms each)",
            median(lambda r: r.sink["connections"] * connect / max(r.delivered, 1)),
        ),
        (
            f"issue row loaded per chunk ({row:.2f} ms)",
            median(lambda r: r.chunks * row / max(r.delivered, 1)),
        ),
        (
            f"variants loaded once per sender ({variants:.1f} ms)",
            median(lambda r: max(1, len(r.workers)) * variants / max(r.delivered, 1)),
        ),
    ]
    print()
    print("ms per message, by part (medians; parts overlap, they do not add up):")
    print(f"{'':<40}" + "".join(f"{label:>14}" for label in labels))
    for name, values in rows:
        print(f"{name:<40}" + "".join(f"{value:>14}" for value in values))
    print("CPU ms per message, each sending process:")
    for label, group in by_label.items():
        print(f"    {label:<12} {sender_cpu(group) if group else '-'}")
    print(
        f"a rate-limit slot from Redis, as a worker takes it: {costs['slot']:.3f} ms wall, "
        f"{costs['slot_cpu']:.3f} ms CPU per message (embedded: a local limiter, no round trip)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections per sender")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of all the modes, taking turns"
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--quick", action="store_true", help="500 subscribers, 1 worker: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.workers, args.repeat = 500, "1", 1
    counts = [int(n) for n in args.workers.split(",") if n.strip()]

    print(f"machine: {machine()}", flush=True)
    sink = Sink()
    folder = Path(tempfile.mkdtemp(prefix="kabar-bench-"))
    costs: dict[str, float] = {}
    runs = []
    try:
        for round_ in range(args.repeat):
            for n in [0, *counts]:
                where = folder / f"run{round_}-{n}"
                runs.append(run_mode(args, sink, where, n, costs))
    finally:
        sink.close()
        shutil.rmtree(folder, ignore_errors=True)
    print_table(runs, args)
    print_breakdown(runs, costs)


if __name__ == "__main__":
    main()
