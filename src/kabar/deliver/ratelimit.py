"""The SMTP rate limit: sends spaced evenly at `per_second`, in one process or across all
workers.

Both limiters hand out send slots one interval apart and make the caller sleep until its
slot, so a relay sees a steady stream rather than bursts at the top of each second (what a
fixed-window counter such as Dramatiq's WindowRateLimiter would give). The shared one keeps
the next free slot in Redis and takes it with one atomic script that reads Redis's own
clock, so the workers' clocks need not agree.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Limiter(Protocol):
    async def wait(self) -> None: ...

    async def close(self) -> None: ...


class RateLimiter:
    """Spaces the sends of this process evenly at `per_second`."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def close(self) -> None:
        return None


# KEYS[1]: the next free slot (µs of Redis time); ARGV[1]: the interval in µs.
# Returns how long the caller waits for the slot it took, in µs.
_TAKE_SLOT = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now_us)
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil(interval / 1000) + 60000)
return slot - now_us
"""


class SharedRateLimiter:
    """Spaces the sends of every process that uses the same Redis key at `per_second`."""

    def __init__(self, redis_url: str, key: str, per_second: float) -> None:
        import redis.asyncio

        self.key = key
        self.interval_us = max(1, round(1_000_000 / per_second))
        self._client: Any = redis.asyncio.Redis.from_url(redis_url)
        self._take_slot = self._client.register_script(_TAKE_SLOT)

    async def wait(self) -> None:
        wait_us = int(await self._take_slot(keys=[self.key], args=[self.interval_us]))
        if wait_us > 0:
            await asyncio.sleep(wait_us / 1_000_000)

    async def close(self) -> None:
        await self._client.aclose()
