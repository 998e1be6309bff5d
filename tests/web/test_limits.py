"""Sliding-window limits: strict over every window, shared by concurrent processes' worth of
connections, in the database (SQLite and PostgreSQL) and in Redis."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta

import pytest

from kabar.limits import DatabaseLimits, RedisLimits
from kabar.store import Store

REDIS_URL = os.environ.get("KABAR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_is_strict_at_its_edges(store: Store) -> None:
    clock = Clock()
    limits = DatabaseLimits(store.engine, clock=clock)
    day = timedelta(hours=24)
    assert [limits.allow("a", 3, day) for _ in range(4)] == [True, True, True, False]
    clock.now += 23 * 3600  # the first three are still inside the window
    assert limits.allow("a", 3, day) is False
    clock.now += 3600 + 1  # now they have left it
    assert [limits.allow("a", 3, day) for _ in range(4)] == [True, True, True, False]
    assert limits.allow("b", 3, day) is True  # keys are separate


def test_expired_keys_are_swept(store: Store) -> None:
    from sqlalchemy import select

    from kabar.store.tables import rate_limits

    clock = Clock()
    limits = DatabaseLimits(store.engine, clock=clock)
    for n in range(5):
        limits.allow(f"ip:192.0.2.{n}", 20, timedelta(minutes=10))
    clock.now += 11 * 60  # all five windows are over; one more hit sweeps them
    limits.allow("ip:198.51.100.1", 20, timedelta(minutes=10))
    with store.engine.connect() as connection:
        keys = connection.execute(select(rate_limits.c.key)).scalars().all()
    assert keys == ["ip:198.51.100.1"]


def test_the_limits_live_in_redis_only_with_dramatiq_and_a_redis() -> None:
    from kabar.config import Config
    from kabar.web.pages import Service

    def limits_for(engine: dict[str, str]) -> object:
        config = Config.model_validate({
            "version": 1, "site": {"title": "t", "url": "https://kabar.example.id"},
            "storage": {"database": "sqlite://"}, "engine": engine,
        })  # fmt: skip
        with Store.open("sqlite://") as store:
            service = Service(config, store)
            try:
                return service.limits
            finally:
                service.close()

    redis_mode = {"mode": "dramatiq", "broker_url": "redis://127.0.0.1:6379/0"}
    assert isinstance(limits_for(redis_mode), RedisLimits)
    rabbit = {"mode": "dramatiq", "broker_url": "amqp://kabar@127.0.0.1:5672/"}
    assert isinstance(limits_for(rabbit), DatabaseLimits)
    assert isinstance(limits_for({"mode": "embedded"}), DatabaseLimits)


def test_concurrent_connections_never_exceed_the_limit(store: Store) -> None:
    allowed: list[bool] = []
    lock = threading.Lock()

    def hit() -> None:
        limits = DatabaseLimits(store.engine)  # its own, as another process would have
        for _ in range(10):
            result = limits.allow("shared", 7, timedelta(minutes=10))
            with lock:
                allowed.append(result)

    threads = [threading.Thread(target=hit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 60 and allowed.count(True) == 7


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_reachable(), reason="no Redis on 127.0.0.1:6379")
def test_redis_limits_are_shared_and_strict() -> None:
    prefix = f"kabar-test:{uuid.uuid4().hex}:"
    first, second = RedisLimits(REDIS_URL, prefix), RedisLimits(REDIS_URL, prefix)
    try:
        window = timedelta(seconds=30)
        results = [limits.allow("k", 3, window) for limits in (first, second) * 3]
        assert results == [True, True, True, False, False, False]
        assert first.allow("other", 3, window) is True
        ttl = first._client.pttl(prefix + "k")
        assert 0 < ttl <= 30_000  # it expires by itself
    finally:
        first._client.delete(prefix + "k", prefix + "other")
        first.close()
        second.close()
