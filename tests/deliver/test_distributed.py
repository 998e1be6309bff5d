"""Distributed delivery end to end: `kabar send` queues chunks on a real Redis or RabbitMQ
broker, three `kabar worker` processes send them from the real PostgreSQL ledger to an
aiosmtpd sink, and one worker is killed with SIGKILL mid-send."""

from __future__ import annotations

import bisect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kabar.config import Config
from kabar.deliver.ratelimit import batch_size
from kabar.ingest import ingest_source
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.store.tables import deliveries
from kabar.subscribers import Subscribers

from ..support.database import postgres_schema
from ..support.delivery_setup import SECRET, delivery_config
from ..support.delivery_sink import Sink, running
from ..support.project import SEED_AS_OF, WriteConfig
from ..support.serving import free_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("KABAR_TEST_DATABASE_URL"),
        reason="distributed delivery needs PostgreSQL (KABAR_TEST_DATABASE_URL; .ci/run sets it)",
    ),
]

AUDIENCE = 5000
CONNECTIONS = 2  # per worker: the most messages one worker can have sent and not recorded
BROKERS = {
    "redis": {"broker_url": "redis://127.0.0.1:6379/0"},
    "rabbitmq": {
        "broker_url": "amqp://guest@127.0.0.1:5672/",
        "broker_password_env": "KABAR_TEST_AMQP_PASSWORD",
        "limiter_url": "redis://127.0.0.1:6379/0",
    },
}
ENV = {"KABAR_SECRET": SECRET, "KABAR_TEST_AMQP_PASSWORD": "guest"}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema(os.environ["KABAR_TEST_DATABASE_URL"])


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A queue of the test's own on each broker, removed afterwards."""
    name = f"kabar-test-{uuid.uuid4().hex[:10]}"
    yield name
    import pika
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(f"dramatiq:{name}*"):
        client.delete(key)
    client.close()
    parameters = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/")
    with pika.BlockingConnection(parameters) as connection:
        channel = connection.channel()
        for queue in (name, f"{name}.DQ", f"{name}.XQ"):
            channel.queue_delete(queue)


def distributed_config(
    write_config: WriteConfig,
    port: int,
    database_url: str,
    broker: str,
    queue: str,
    chunk_size: int = 250,
    digest: dict[str, Any] | None = None,
    **smtp: Any,
) -> Config:
    return delivery_config(
        write_config, port=port, database_url=database_url, lease="3s", chunk_size=chunk_size,
        smtp={"connections": CONNECTIONS, "rate_per_second": 100000, "timeout": "10s", **smtp},
        engine={"mode": "dramatiq", "queue": queue, "resubmit_after": "4s", **BROKERS[broker]},
        digest=digest,
    )  # fmt: skip


def add_audience(config: Config, store: Store, audience: int, folder: Path) -> list[str]:
    """The seed's articles and `audience` subscribers, imported from a CSV in one go."""
    ingest_source(config, store, config.source("seeds"), as_of=SEED_AS_OF)
    emails = [f"pembaca{n:05d}@example.com" for n in range(audience)]
    csv = folder / "audience.csv"
    rows = (f"{email},Pembaca {n},{'id' if n % 2 else 'en'}" for n, email in enumerate(emails))
    csv.write_text("email,name,locale\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert Subscribers(store.engine).import_csv(csv, "pembaca").imported == audience
    return emails


def kabar(config: Config, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "kabar", "-c", str(config.path), *args],
            env={**os.environ, **ENV},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def claims_by_owner(store: Store) -> Counter[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(deliveries.c.owner, func.count())
            .where(deliveries.c.state == "claimed")
            .group_by(deliveries.c.owner)
        ).all()
    return Counter({owner: count for owner, count in rows})


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """The condition's first true value, polled until the timeout."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def status_json(config: Config) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "kabar", "-c", str(config.path), "status", "--json"],
        env={**os.environ, **ENV}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_three_workers_one_killed_mid_send_everyone_gets_the_issue(
    write_config: WriteConfig, postgres_url: str, queue_name: str, tmp_path: Path, broker: str
) -> None:
    sink = Sink(keep_data=False)
    logs = tmp_path / "logs"
    logs.mkdir()
    with running(sink) as server, Store.open(postgres_url) as store:
        config = distributed_config(write_config, server.port, postgres_url, broker, queue_name)
        emails = add_audience(config, store, AUDIENCE, tmp_path)
        workers = [kabar(config, "worker", log=logs / f"worker{n}.log") for n in range(3)]
        sender = kabar(config, "send", "harian", "--now", log=logs / "send.log")
        try:
            owners = {f"{socket.gethostname()}:{w.pid}": w for w in workers}
            wait_for(lambda: len(sink.received) >= AUDIENCE // 3, 180, "a third of the sends")
            claiming = wait_for(
                lambda: next((o for o in claims_by_owner(store) if o in owners), None),
                10, "a worker holding claims",
            )  # fmt: skip
            victim = owners.pop(claiming)
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(10) == -signal.SIGKILL
            received_at_kill = len(sink.received)
            assert sender.wait(300) == 0, (logs / "send.log").read_text()
        finally:
            for process in [*workers, sender]:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        exits = [process.wait(30) for process in owners.values()]

    assert received_at_kill < AUDIENCE  # the kill came mid-send
    assert exits == [0, 0]  # SIGTERM: the survivors stop cleanly
    by_recipient = sink.by_recipient()
    assert sorted(by_recipient) == emails  # everyone has the issue
    assert sink.duplicates() <= CONNECTIONS  # at most the killed worker's sends in flight
    survivors_sent = [
        (logs / f"worker{n}.log").read_text().count(" sent=")
        for n, process in enumerate(workers)
        if process is not victim
    ]
    assert all(survivors_sent), survivors_sent  # both survivors sent chunks
    status = status_json(config)
    assert status["state"] == "sent"
    assert status["audience"] == AUDIENCE
    assert status["sent"] == len(by_recipient) == len(sink.received) - sink.duplicates()
    assert status["pending"] == status["failed"] == status["deferred"] == 0


def test_the_smtp_rate_limit_holds_across_all_workers(
    write_config: WriteConfig, postgres_url: str, queue_name: str, tmp_path: Path
) -> None:
    """Three workers at 40 messages per second in all, each taking its slots from Redis in
    batches: every 10-second window at the sink holds 400 messages within 5%, and no
    second is a burst. Unshared, each worker alone would send 40 a second."""
    rate, audience, window = 40, 560, 10.0
    assert batch_size(rate) > 1  # the workers take their slots in batches
    sink = Sink(keep_data=False)
    with running(sink) as server, Store.open(postgres_url) as store:
        config = distributed_config(
            write_config, server.port, postgres_url, "redis", queue_name, chunk_size=50,
            rate_per_second=rate,
        )  # fmt: skip
        add_audience(config, store, audience, tmp_path)
        workers = [kabar(config, "worker", log=tmp_path / f"worker{n}.log") for n in range(3)]
        try:
            sender = kabar(config, "send", "harian", "--now", log=tmp_path / "send.log")
            assert sender.wait(120) == 0, (tmp_path / "send.log").read_text()
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    times = sorted(item.at for item in sink.received)
    assert len(times) == audience
    assert times[-1] - times[0] >= window + 1, "too short a send to hold a whole window"
    counts = [  # every window that starts or ends at an arrival, inside the send
        bisect.bisect_left(times, t + window) - i
        for i, t in enumerate(times) if t + window <= times[-1]
    ] + [
        i + 1 - bisect.bisect_right(times, t - window)
        for i, t in enumerate(times) if t - window >= times[0]
    ]  # fmt: skip
    expected = rate * window
    assert 0.95 * expected <= min(counts) <= max(counts) <= 1.05 * expected, (
        f"{min(counts)}..{max(counts)} sends in {window:.0f}-second windows, limit {expected:.0f}"
    )
    # Slots are spaced exactly; arrivals also carry each send's latency, which jitters.
    busiest = max(bisect.bisect_left(times, t + 1) - i for i, t in enumerate(times))
    assert busiest <= rate * 1.25, f"{busiest} sends in one second, limit {rate}"


def test_the_scheduler_queues_chunks_and_closes_the_issue_workers_sent(
    write_config: WriteConfig, postgres_url: str, queue_name: str, tmp_path: Path
) -> None:
    """`kabar run --once` queues the due issue's chunks and returns; the daemon, `kabar
    run`, waits for the workers and marks the issue sent."""
    audience, chunk_size = 30, 4
    sink = Sink(keep_data=False)
    with running(sink) as server, Store.open(postgres_url) as store:
        config = distributed_config(
            write_config, server.port, postgres_url, "redis", queue_name, chunk_size=chunk_size,
            digest={"schedule": {"cron": "* * * * *", "max_lateness": "1h"}},
        )  # fmt: skip
        emails = add_audience(config, store, audience, tmp_path)

        once = subprocess.run(
            [sys.executable, "-m", "kabar", "-c", str(config.path), "run", "--once"],
            env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        [issue] = Ledger(store.engine).issues()
        assert issue.state == "sending" and issue.chunks == -(-audience // chunk_size)
        assert queued_chunks(queue_name) == Counter(range(issue.chunks))
        assert sink.received == []  # nobody sends until a worker starts

        daemon = kabar(config, "run", log=tmp_path / "run.log")
        worker = kabar(config, "worker", log=tmp_path / "worker.log")
        try:
            wait_for(lambda: Ledger(store.engine).issue(issue.key).state == "sent", 60, "sent")
        finally:
            for process in (daemon, worker):
                process.send_signal(signal.SIGTERM)
            assert [daemon.wait(30), worker.wait(30)] == [0, 0]
    assert sorted(sink.by_recipient()) == emails
    assert sink.duplicates() == 0


def queued_chunks(queue: str) -> Counter[int]:
    """How many messages wait on a Redis broker's queue for each chunk."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    messages = client.hvals(f"dramatiq:{queue}.msgs")
    client.close()
    return Counter(json.loads(message)["args"][1] for message in messages)


def sent_counted(port: int) -> float:
    """kabar_messages_total{result="sent"} summed over reply classes, scraped from a worker."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "kabar_messages"
        for sample in family.samples
        if sample.name == "kabar_messages_total" and sample.labels.get("result") == "sent"
    )


def test_each_worker_counts_only_what_it_sent(
    write_config: WriteConfig, postgres_url: str, queue_name: str, tmp_path: Path
) -> None:
    """Every worker serves its own metrics: scraped together they add up to the audience,
    with nothing counted twice."""
    audience, chunk_size = 40, 4
    sink = Sink(keep_data=False)
    ports = [free_port(), free_port()]
    with running(sink) as server, Store.open(postgres_url) as store:
        config = distributed_config(
            write_config, server.port, postgres_url, "redis", queue_name, chunk_size=chunk_size,
            digest={"schedule": {"cron": "* * * * *", "max_lateness": "1h"}},
        )  # fmt: skip
        add_audience(config, store, audience, tmp_path)
        workers = [
            kabar(config, "worker", "--metrics-port", str(port), log=tmp_path / f"w{port}.log")
            for port in ports
        ]
        daemon = kabar(config, "run", log=tmp_path / "run.log")
        try:
            # The cron fires every minute, so a later minute's (empty) issue may follow:
            # wait for the first one, which holds the audience.
            first = wait_for(lambda: Ledger(store.engine).issues()[-1:], 60, "an issue")[0]
            ledger = Ledger(store.engine)
            wait_for(lambda: ledger.issue(first.key).state == "sent", 120, "sent")
            counted = [sent_counted(port) for port in ports]
        finally:
            for process in (daemon, *workers):
                process.send_signal(signal.SIGTERM)
            for process in (daemon, *workers):
                process.wait(30)
    assert sum(counted) == audience == len(sink.by_recipient())
