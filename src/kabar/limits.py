"""Sliding-window rate limits that every process shares and that survive restarts.

`allow(key, limit, window)` says whether one more hit fits: fewer than `limit` hits in the
last `window`. Only allowed hits are stored, so a key never holds more than `limit` times
and a flood costs one small row. Strict sliding windows (not fixed windows or a token
bucket) because "at most 3 mails per 24 h" must hold over every 24 h, edges included.

The log lives in the database (one row per key, locked while it is read and written), or
in Redis (one sorted set per key, changed by one atomic script) when the config runs
Dramatiq workers with a Redis; both are seen by every process and kept across restarts.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kabar.store.tables import rate_limits

_SWEEP_EVERY = 60.0  # seconds between deletions of expired rows, per process


class Limits(Protocol):
    def allow(self, key: str, limit: int, window: timedelta) -> bool: ...


class DatabaseLimits:
    """Sliding windows in the `rate_limits` table (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._swept = 0.0

    def allow(self, key: str, limit: int, window: timedelta) -> bool:
        now_ms = int(self.clock() * 1000)
        since = now_ms - int(window.total_seconds() * 1000)
        expires = datetime.fromtimestamp(now_ms / 1000 + window.total_seconds(), UTC)
        upsert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.engine.begin() as connection:
            # A write first: it creates the row if needed and, on SQLite, takes the write
            # lock, so two processes never both read the same old log.
            connection.execute(
                upsert(rate_limits)
                .values(key=key, hits="", expires=expires)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            stored = connection.execute(
                select(rate_limits.c.hits).where(rate_limits.c.key == key).with_for_update()
            ).scalar_one()
            hits = [int(hit) for hit in stored.split() if int(hit) > since]
            allowed = len(hits) < limit
            if allowed:
                hits.append(now_ms)
            connection.execute(
                update(rate_limits)
                .where(rate_limits.c.key == key)
                .values(hits=" ".join(map(str, hits)), expires=expires)
            )
            self._sweep(connection, now_ms)
        return allowed

    def _sweep(self, connection: Any, now_ms: int) -> None:
        if now_ms / 1000 - self._swept < _SWEEP_EVERY:
            return
        self._swept = now_ms / 1000
        moment = datetime.fromtimestamp(now_ms / 1000, UTC)
        connection.execute(delete(rate_limits).where(rate_limits.c.expires < moment))


# KEYS[1]: the key's sorted set; ARGV: limit, window (ms), a unique member suffix.
# Redis's own clock, so the processes' clocks need not agree.
_ALLOW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms, now_ms .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


class RedisLimits:
    """Sliding windows in Redis sorted sets, under `prefix`."""

    def __init__(self, url: str, prefix: str = "kabar:limit:") -> None:
        import redis

        self.prefix = prefix
        self._client: Any = redis.Redis.from_url(url)
        self._allow = self._client.register_script(_ALLOW)

    def allow(self, key: str, limit: int, window: timedelta) -> bool:
        window_ms = int(window.total_seconds() * 1000)
        args: list[int | str] = [limit, window_ms, secrets.token_hex(6)]
        return bool(int(self._allow(keys=[self.prefix + key], args=args)))

    def close(self) -> None:
        self._client.close()
