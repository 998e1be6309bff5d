"""Delivery throughput: kabar end to end against a raw aiosmtplib loop, in the same run.

A counting SMTP sink (bench/smtp_sink.py) runs in another process on 127.0.0.1. kabar
sends a real 12-item issue to N subscribers with `kabar send --now` in a subprocess
(ledger, personalisation, signing when DKIM is configured, SMTP); the baseline sends that
issue's prepared bytes for one subscriber N times over the same number of reused
connections. Printed: both rates, their ratio (goal >= 0.8) and kabar's peak RSS (goal
<= 400 MB at 100,000 subscribers).

The two take turns, so that both meet the same machine: on a shared VM, a neighbour
that is busy for a minute slowed whichever side ran in that minute, and one side after
the other gave ratios 0.2 apart. kabar runs for a slice (--slice seconds), is stopped with
SIGSTOP, the baseline sends as many messages as kabar did in that slice, and kabar
continues with SIGCONT. Each rate counts only its own side's slices; kabar's start-up
(render, materialise) and its end are in its slices, as they are in a real send.

The sink is pinned to the last CPU and both senders to the first, so the sink never
competes for a core with what is measured (on a 2-core machine it otherwise shares one with
kabar's ledger thread but not with the baseline, which has none). kabar's threads share
its one core, like the baseline's single thread. --no-pin leaves placement to the kernel.

With --split, kabar runs once more with each message built only once and reused: what the
sending loop and ledger cost by themselves, apart from the digest stage's per-subscriber
build (PreparedIssue.message_for).

    .venv/bin/python bench/deliver.py [--subscribers 100000] [--connections 8] [--slice 4]
                                      [--split] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED = next((ROOT / "seeds").glob("*.txt"))
AS_OF = datetime.fromisoformat("2024-05-01T12:00:00+07:00")
SECRET = "bench-link-secret"  # noqa: S105 - a throwaway key for a throwaway database


# --- the sink, in its own process ------------------------------------------------------------


class Sink:
    def __init__(self, cpus: set[int] | None = None) -> None:
        """`cpus`: the CPUs the sink may run on (default: any)."""
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("smtp_sink.py")), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        assert self.process.stdout.readline().strip() == "ready"

    def count(self) -> int:
        return int(self.ask("count"))

    def ask(self, command: str) -> str:
        """One of the sink's commands (count, reset, stats): its answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


class Steal:
    """The share of CPU time the hypervisor gave to other guests (/proc/stat's steal)
    while one side ran, over all its slices: on a shared VM, what slows a run down."""

    def __init__(self) -> None:
        self.deltas: list[int] = []

    def __enter__(self) -> Steal:
        self.start = _cpu_times()
        return self

    def __exit__(self, *_: object) -> None:
        deltas = [b - a for a, b in zip(self.start, _cpu_times(), strict=True)]
        if self.deltas:
            deltas = [a + b for a, b in zip(self.deltas, deltas, strict=True)]
        self.deltas = deltas

    @property
    def percent(self) -> float:
        if len(self.deltas) <= 7:
            return 0.0
        return 100 * self.deltas[7] / max(sum(self.deltas), 1)


def _cpu_seconds(after: resource.struct_rusage, before: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return f"{model.group(1) if model else 'unknown CPU'}, {os.cpu_count()} cores"


# --- the project ---------------------------------------------------------------------------


def write_project(folder: Path, port: int, connections: int) -> Path:
    (folder / "seeds").mkdir()
    shutil.copy(SEED, folder / "seeds" / SEED.name)
    config = folder / "kabar.yaml"
    config.write_text(
        f"""version: 1
site: {{title: Kabar Contoh, url: "https://kabar.example.id", timezone: Asia/Jakarta}}
storage: {{database: "sqlite:///kabar.db"}}
sources: [{{id: seeds, kind: pages, path: seeds/, base_url: "https://kabar.example.id/read"}}]
lists: [{{id: pembaca, name: Pembaca, from: "Kabar Contoh <redaksi@kabar.example.id>"}}]
digests:
  - {{id: harian, list: pembaca, sources: [seeds], subject: "Kabar pagi, {{date}}",
      window: 10000d, max_items: 12}}
delivery:
  transport: smtp
  chunk_size: 500
  smtp: {{host: 127.0.0.1, port: {port}, starttls: false, connections: {connections},
          rate_per_second: 1000000, timeout: 30s}}
web: {{base_url: "https://kabar.example.id", secret_env: KABAR_SECRET}}
""",
        encoding="utf-8",
    )
    return config


def fill_store(config_path: Path, subscribers: int) -> None:
    """The seed's 11 articles and one more (12 items), and the subscribers, streamed."""
    from kabar import config as config_module
    from kabar.ingest import ingest_source
    from kabar.store import Store
    from kabar.subscribers import Subscriber, Subscribers, new_id

    config = config_module.load(config_path)
    with Store.open(config.database_url) as store:
        ingest_source(config, store, config.source("seeds"), as_of=AS_OF)
        newest = next(store.articles(limit=1))
        extra = newest.with_changes(
            id="bench0000000012", guid=newest.guid + "#12", url=newest.url + "?12",
            title=newest.title + " (ulasan)", published=newest.published - timedelta(minutes=1),
        )  # fmt: skip
        store.upsert([extra])

        now = datetime.now(UTC)

        def people() -> Iterator[Subscriber]:
            for n in range(subscribers):
                yield Subscriber(
                    new_id(), "pembaca", f"pembaca{n}@example.com", f"Pembaca {n}",
                    "id", "active", "import", now, now,
                )  # fmt: skip

        Subscribers(store.engine).insert_many(people())


# --- the two runs ------------------------------------------------------------------------------


def kabar_command(config_path: Path, *, build_once: bool = False) -> list[str]:
    kabar = [__file__, "--build-once"] if build_once else ["-m", "kabar"]
    return [sys.executable, *kabar, "-q", "-c", str(config_path), "send", "harian", "--now"]


def kabar_env() -> dict[str, str]:
    return {**os.environ, "KABAR_SECRET": SECRET}


def run_kabar(config_path: Path, *, build_once: bool = False) -> tuple[float, float, int]:
    """Seconds, CPU seconds and peak RSS (KiB) of `kabar send harian --now`, on its own."""
    started = time.perf_counter()
    process = subprocess.Popen(kabar_command(config_path, build_once=build_once), env=kabar_env())
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    _check_exit(status)
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _check_exit(status: int) -> None:
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"kabar send failed with status {os.waitstatus_to_exitcode(status)}")


def prepared_bytes(config_path: Path) -> tuple[bytes, float] | None:
    """One subscriber's message of kabar's issue (the baseline's payload), and what
    building one message costs (the digest stage's share of kabar's time); None until
    kabar has rendered the issue."""
    from kabar import config as config_module
    from kabar.digest import load_prepared
    from kabar.ledger import Ledger
    from kabar.store import Store
    from kabar.subscribers import Links

    config = config_module.load(config_path)
    with Store.open(config.database_url, run_migrations=False) as store:
        issues = Ledger(store.engine).issues()
        if not issues or issues[0].prepared is None:
            return None
        [issue] = issues
        assert issue.prepared is not None
        prepared = load_prepared(config, issue.prepared)
        links = Links(config, SECRET.encode())
        recipients = [
            links.recipient(f"{n:016x}", f"pembaca{n}@example.com", f"Pembaca {n}", "id")
            for n in range(1000)
        ]
        started = time.perf_counter()
        for recipient in recipients:
            prepared.message_for(recipient)
        build_seconds = (time.perf_counter() - started) / len(recipients)
        return prepared.message_for(recipients[0]), build_seconds


class RawLoop:
    """The baseline: one aiosmtplib client per connection, connected once, on an event
    loop of its own; each `send(count)` sends the prepared bytes `count` more times."""

    def __init__(self, port: int, message: bytes, connections: int) -> None:
        import aiosmtplib

        self.message = message
        self.sent = 0
        self.loop = asyncio.new_event_loop()
        self.clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            for _ in range(connections)
        ]
        self._on_each(lambda client: client.connect())

    def send(self, count: int) -> float:
        """Seconds taken to send `count` messages over all the connections."""
        numbers = iter(range(self.sent, self.sent + count))

        async def lane(client: Any) -> None:
            for n in numbers:
                await client.sendmail(
                    "redaksi@kabar.example.id", [f"pembaca{n}@example.com"], self.message
                )

        started = time.perf_counter()
        self._on_each(lane)
        self.sent += count
        return time.perf_counter() - started

    def close(self) -> None:
        self._on_each(lambda client: client.quit())
        self.loop.close()

    def _on_each(self, work: Callable[[Any], Awaitable[object]]) -> None:
        """Run `work(client)` for every client at once, on this loop."""

        async def together() -> None:
            await asyncio.gather(*(work(client) for client in self.clients))

        self.loop.run_until_complete(together())


@dataclass
class Side:
    """What one side of the interleaved run took, over all its slices."""

    seconds: float = 0.0
    cpu: float = 0.0
    slices: int = 0
    steal: Steal = field(default_factory=Steal)


@dataclass
class Interleaved:
    kabar: Side
    raw: Side
    peak_kib: int
    message: bytes
    build_seconds: float


def interleave(
    config_path: Path, sink: Sink, subscribers: int, connections: int, slice_seconds: float
) -> Interleaved:
    """kabar's send and the baseline, taking turns (see the module's docstring)."""
    kabar, raw = Side(), Side()
    process = subprocess.Popen(kabar_command(config_path), env=kabar_env())
    exit_fd = os.pidfd_open(process.pid)  # readable once kabar has exited
    exited = False
    baseline: RawLoop | None = None
    build_seconds = 0.0
    try:
        while not exited:
            received = sink.count()
            started = time.perf_counter()
            with kabar.steal:
                os.kill(process.pid, signal.SIGCONT)
                exited = bool(select.select([exit_fd], [], [], slice_seconds)[0])
                if not exited:
                    os.kill(process.pid, signal.SIGSTOP)
            kabar.seconds += time.perf_counter() - started
            kabar.slices += 1
            if baseline is None and (payload := prepared_bytes(config_path)) is not None:
                message, build_seconds = payload
                baseline = RawLoop(sink.port, message, connections)
            if baseline is not None:  # as many as kabar sent; the rest once it is done
                count = sink.count() - received if not exited else subscribers - baseline.sent
                _timed(raw, baseline, count)
        _, status, usage = os.wait4(process.pid, 0)
        _check_exit(status)
    finally:
        if not exited:
            process.kill()  # a stopped process too
        os.close(exit_fd)
    assert baseline is not None, "kabar ended without preparing an issue"
    baseline.close()
    kabar.cpu = usage.ru_utime + usage.ru_stime
    return Interleaved(kabar, raw, usage.ru_maxrss, baseline.message, build_seconds)


def _timed(raw: Side, baseline: RawLoop, count: int) -> None:
    if count <= 0:
        return
    before = resource.getrusage(resource.RUSAGE_SELF)
    with raw.steal:
        raw.seconds += baseline.send(count)
    raw.cpu += _cpu_seconds(resource.getrusage(resource.RUSAGE_SELF), before)
    raw.slices += 1


def kabar_building_once(arguments: list[str]) -> None:
    """The kabar command, with the first message built reused for every subscriber."""
    from kabar import cli
    from kabar.digest import PreparedIssue

    build = PreparedIssue.message_for
    built: dict[str, bytes] = {}

    def message_for(self: PreparedIssue, recipient: object) -> bytes:
        if self.issue_key not in built:
            built[self.issue_key] = build(self, recipient)  # type: ignore[arg-type]
        return built[self.issue_key]

    PreparedIssue.message_for = message_for  # type: ignore[method-assign]
    sys.argv = ["kabar", *arguments]
    cli.main()


def main() -> None:
    if sys.argv[1:2] == ["--build-once"]:
        kabar_building_once(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--slice", type=float, default=4.0, help="seconds per kabar turn")
    parser.add_argument("--split", action="store_true", help="also time kabar building once")
    parser.add_argument("--no-pin", action="store_true", help="do not pin sink and senders")
    parser.add_argument(
        "--quick", action="store_true", help="300 subscribers, 0.5 s turns: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.slice = 300, 0.5
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    sink = Sink({cpus[-1]} if pin else None)
    if pin:  # this process runs the baseline; kabar's subprocesses inherit the CPU
        os.sched_setaffinity(0, {cpus[0]})
    folder = Path(tempfile.mkdtemp(prefix="kabar-bench-"))
    try:
        config_path = write_project(folder, sink.port, args.connections)
        started = time.perf_counter()
        fill_store(config_path, args.subscribers)
        print(f"setup: {args.subscribers:,} subscribers in {time.perf_counter() - started:.1f} s")
        run = interleave(config_path, sink, args.subscribers, args.connections, args.slice)
        assert sink.count() == 2 * args.subscribers, "the sink did not get every message"
        if args.split:
            again = folder / "again"
            again.mkdir()
            config_again = write_project(again, sink.port, args.connections)
            fill_store(config_again, args.subscribers)
            once_seconds, _, _ = run_kabar(config_again, build_once=True)
            assert sink.count() == 3 * args.subscribers
    finally:
        sink.close()
        shutil.rmtree(folder, ignore_errors=True)

    kabar, raw = run.kabar, run.raw
    kabar_rate = args.subscribers / kabar.seconds
    raw_rate = args.subscribers / raw.seconds
    print(f"machine: {machine()}")
    print(f"message: {len(run.message):,} bytes, 12 items; {args.connections} connections")
    placement = f"senders on CPU {cpus[0]}, sink on CPU {cpus[-1]}" if pin else "not pinned"
    print(f"placement: {placement}; taking turns: {kabar.slices} kabar, {raw.slices} raw")
    print(
        f"kabar end to end: {kabar_rate:,.0f} msg/s ({kabar.seconds:.1f} s; "
        f"CPU steal {kabar.steal.percent:.1f}%)"
    )
    print(
        f"raw aiosmtplib:   {raw_rate:,.0f} msg/s ({raw.seconds:.1f} s; "
        f"CPU steal {raw.steal.percent:.1f}%)"
    )
    print(f"ratio: {kabar_rate / raw_rate:.2f} (goal >= 0.8)")
    print(
        f"CPU per message: kabar {kabar.cpu / args.subscribers * 1000:.2f} ms, "
        f"raw {raw.cpu / args.subscribers * 1000:.2f} ms (steal does not count here)"
    )
    print(f"kabar peak RSS: {run.peak_kib / 1024:.0f} MB (goal <= 400 MB)")
    print(
        f"of kabar's time per message ({1000 / kabar_rate:.2f} ms), building the message "
        f"(PreparedIssue.message_for) takes {run.build_seconds * 1000:.2f} ms"
    )
    if args.split:
        once_rate = args.subscribers / once_seconds
        print(
            f"kabar building each message once: {once_rate:,.0f} msg/s, "
            f"ratio {once_rate / raw_rate:.2f} (the loop and ledger alone)"
        )


if __name__ == "__main__":
    main()
