"""The parts of distributed delivery one at a time: the engine config, the dispatcher's
queueing and re-queueing (on a real Redis broker), and the shared rate limit (real Redis)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import ConfigError, Engine
from kabar.deliver.ratelimit import SharedRateLimiter, batch_size
from kabar.distributed import DramatiqDispatcher, shown

from ..support.database import postgres_schema
from ..support.project import WriteConfig

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = {"database": "postgresql+psycopg://kabar@db.example/kabar", "feeds": "public/"}


def problems(write_config: WriteConfig, **overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        config_module.load(write_config(**overrides))
    return raised.value.problems


# --- config ----------------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = os.environ.get("KABAR_TEST_DATABASE_URL")
    if not base:
        pytest.skip("set KABAR_TEST_DATABASE_URL to a PostgreSQL database")
    yield from postgres_schema(base)


def test_dramatiq_mode_on_postgresql_is_valid_and_check_says_so(
    write_config: WriteConfig, postgres_url: str
) -> None:
    """`check` also opens the database: reachable, and new, so every migration is to come."""
    storage = {"database": postgres_url, "feeds": "public/"}
    path = write_config(storage=storage, engine={"mode": "dramatiq", "broker_url": REDIS})
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 0, result.output
    assert "through dramatiq workers" in result.output
    assert "reachable; the next command applies" in result.stdout.splitlines()[1]


def test_dramatiq_mode_needs_a_broker(write_config: WriteConfig) -> None:
    [problem] = problems(write_config, storage=POSTGRES, engine={"mode": "dramatiq"})
    assert "engine.broker_url: dramatiq mode needs a broker_url" in problem


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"broker_url": "kafka://k:9092"}, "expected a redis:// or rediss:// or amqp://"),
        ({"broker_url": "amqp://guest:guest@mq/"}, "in an env var named by broker_password_env"),
        ({"limiter_url": "amqp://mq/"}, "limiter_url: expected a redis:// or rediss:// URL"),
    ],
)
def test_bad_broker_and_limiter_urls_are_refused(
    write_config: WriteConfig, engine: dict[str, str], message: str
) -> None:
    found = problems(write_config, storage=POSTGRES, engine={"mode": "dramatiq", **engine})
    assert any(message in problem for problem in found), found
    assert not any("guest:guest" in problem for problem in found)


def test_an_amqp_broker_with_smtp_needs_a_redis_limiter(write_config: WriteConfig) -> None:
    engine = {"mode": "dramatiq", "broker_url": "amqp://kabar@mq:5672/"}
    delivery = {"transport": "smtp"}
    [problem] = problems(write_config, storage=POSTGRES, engine=engine, delivery=delivery)
    assert "set engine.limiter_url to a redis:// URL" in problem
    config_module.load(
        write_config(storage=POSTGRES, delivery=delivery, engine={**engine, "limiter_url": REDIS})
    )


def test_passwords_come_from_env_vars_and_logs_never_show_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MQ_PASSWORD", "p@ss/word")
    engine = Engine(
        mode="dramatiq", broker_url="amqp://kabar@mq:5672/", broker_password_env="MQ_PASSWORD"
    )
    assert engine.broker == "amqp://kabar:p%40ss%2Fword@mq:5672/"
    assert engine.limiter is None  # an amqp broker is no rate-limit store
    assert shown(engine.broker) == "amqp://kabar:***@mq:5672/"
    redis_engine = Engine(mode="dramatiq", broker_url=REDIS)
    assert redis_engine.limiter == REDIS  # a redis broker doubles as the limiter


def test_worker_refuses_the_embedded_mode(write_config: WriteConfig) -> None:
    result = CliRunner().invoke(cli, ["-c", str(write_config()), "worker"])
    assert result.exit_code == 2
    assert "kabar worker needs engine.mode: dramatiq" in result.output


# --- the dispatcher: queueing and the sweeper ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_queue() -> Iterator[tuple[Engine, redis.Redis]]:
    queue = f"kabar-test-{uuid.uuid4().hex[:10]}"
    engine = Engine(mode="dramatiq", broker_url=REDIS, queue=queue, resubmit_after="60s")
    client = redis.Redis.from_url(REDIS)
    yield engine, client
    for key in client.scan_iter(f"dramatiq:{queue}*"):
        client.delete(key)
    client.close()


def queued_chunks(client: redis.Redis, engine: Engine) -> Counter[int]:
    """How many messages wait on the broker's queue for each chunk."""
    import json

    messages = client.hvals(f"dramatiq:{engine.queue}.msgs")
    return Counter(json.loads(message)["args"][1] for message in messages)


def test_chunks_are_queued_once_then_again_only_when_lost_or_drained(
    redis_queue: tuple[Engine, redis.Redis],
) -> None:
    engine, client = redis_queue
    clock = Clock()
    settled = {"count": 0}  # deliveries of the issue with a result, as the ledger says
    dispatcher = DramatiqDispatcher(engine, lambda key: settled["count"], clock=clock)
    key = "harian:pembaca:2026-11-27"

    async def rounds() -> None:
        await dispatcher.submit(key, [0, 1, 2])
        await dispatcher.submit(key, [0, 1, 2])  # still queued: nothing new
        assert queued_chunks(client, engine) == Counter({0: 1, 1: 1, 2: 1})
        # Chunk 0 drained (nothing due in it), then a retry came due: queued at once.
        await dispatcher.submit(key, [1, 2])
        await dispatcher.submit(key, [0, 1, 2])
        assert queued_chunks(client, engine) == Counter({0: 2, 1: 1, 2: 1})
        # Long after, but workers are getting through the queue: nothing is lost.
        for _ in range(3):
            clock.now += 50
            settled["count"] += 10
            await dispatcher.submit(key, [1, 2])
        assert queued_chunks(client, engine) == Counter({0: 2, 1: 1, 2: 1})
        # No result recorded for resubmit_after: the messages of chunks 1 and 2 were lost.
        clock.now += 59
        await dispatcher.submit(key, [1, 2])
        assert queued_chunks(client, engine) == Counter({0: 2, 1: 1, 2: 1})
        clock.now += 1
        await dispatcher.submit(key, [1, 2])
        assert queued_chunks(client, engine) == Counter({0: 2, 1: 2, 2: 2})
        await dispatcher.close()

    asyncio.run(rounds())
    assert not asyncio.run(dispatcher.join())  # workers elsewhere: never waits


# --- the shared rate limit -------------------------------------------------------------------


def test_limiters_sharing_a_key_space_their_sends_together() -> None:
    key = f"kabar:test-rate:{uuid.uuid4().hex}"

    async def burst(limiters: list[SharedRateLimiter], each: int) -> float:
        async def send_all(limiter: SharedRateLimiter) -> None:
            for _ in range(each):
                await limiter.wait()

        started = time.perf_counter()
        await asyncio.gather(*(send_all(limiter) for limiter in limiters))
        elapsed = time.perf_counter() - started
        for limiter in limiters:
            await limiter.close()
        return elapsed

    # Three senders at 100 per second in all: 60 sends take ~0.59 s, not ~0.2 s.
    shared = asyncio.run(burst([SharedRateLimiter(REDIS, key, 100) for _ in range(3)], 20))
    assert shared >= 0.55
    # Each on a key of its own (another relay): they do not wait for each other.
    apart = asyncio.run(burst([SharedRateLimiter(REDIS, f"{key}:{n}", 100) for n in range(3)], 20))
    assert apart < shared * 0.6


def test_a_worker_takes_its_slots_in_batches_still_one_interval_apart() -> None:
    """At 200 per second a worker takes 20 slots per round trip to Redis, and spends them
    at their own times: 60 sends take at least 59 intervals, in 3 round trips, not 60."""
    key = f"kabar:test-rate:{uuid.uuid4().hex}"
    assert batch_size(200) == 20 and batch_size(5) == 1 and batch_size(1e6) == 64

    async def sends() -> tuple[list[float], int]:
        limiter = SharedRateLimiter(REDIS, key, 200)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def lane() -> None:
            for _ in range(15):
                await limiter.wait()
                times.append(loop.time())

        await asyncio.gather(*(lane() for _ in range(4)))
        await limiter.close()
        return sorted(times), limiter.round_trips

    times, round_trips = asyncio.run(sends())
    assert round_trips == 3
    assert times[-1] - times[0] >= 59 * 0.005 * 0.95


def test_the_coordinator_looks_again_when_the_pace_says_the_chunks_are_done(
    redis_queue: tuple[Engine, redis.Redis],
) -> None:
    engine, _ = redis_queue
    clock = Clock()
    dispatcher = DramatiqDispatcher(engine, lambda key: 0, clock=clock)
    key = "harian:pembaca:2026-11-27"

    async def looks() -> list[float]:
        seen = []
        for elapsed, left in ((0, 40), (10, 20), (19, 2), (20, 2), (25, 2)):
            clock.now = 1000.0 + elapsed
            await dispatcher.submit(key, list(range(40 - left, 40)))
            seen.append(dispatcher.look_again_in(key, 5.0))
        await dispatcher.close()
        return seen

    # Nothing done yet: the longest wait. 20 left at 2 chunks/s: 10 s, looked at again in
    # a quarter of that. 2 left: 1 s, so in 0.25 s (the soonest). No chunk ran out of
    # work for longer than the longest wait: the longest again.
    assert asyncio.run(looks()) == [5.0, 2.5, 0.25, 0.25, 5.0]
