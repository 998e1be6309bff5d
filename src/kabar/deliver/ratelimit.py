"""The SMTP rate limit: sends spaced evenly at `per_second`, in one process or across all
workers.

Both limiters hand out send slots one interval apart and make the caller sleep until its
slot, so a relay sees a steady stream rather than bursts at the top of each second (what a
fixed-window counter such as Dramatiq's WindowRateLimiter would give). The shared one keeps
the next free slot in Redis and takes a short run of consecutive slots with one atomic
script that reads Redis's own clock, so the workers' clocks need not agree and a worker
pays one round trip per run, not per message.
"""

from __future__ import annotations

import asyncio
import collections
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


# KEYS[1]: the next free slot (µs of Redis time); ARGV[1]: the interval in µs; ARGV[2]: how
# many consecutive slots to take. Returns how long until the first of them, in µs.
_TAKE_SLOTS = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local span = tonumber(ARGV[2]) * interval
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now_us)
redis.call('SET', KEYS[1], slot + span, 'PX', math.ceil(span / 1000) + 60000)
return slot - now_us
"""

# A batch holds at most this long a stretch of the shared stream: short enough that slots a
# worker took and then had no message for (its chunk ended) leave no noticeable hole, and
# that a worker's late sends cannot bunch up.
BATCH_SECONDS = 0.1
MAX_BATCH = 64  # at high rates: one round trip per 64 sends
# Slots this far in the past are dropped, not spent in a burst: late sends bunch up within
# this span at most, so any second at the relay holds at most this much more than its share.
STALE_SECONDS = BATCH_SECONDS


def batch_size(per_second: float) -> int:
    """How many slots a worker takes from Redis at once at this rate."""
    return max(1, min(MAX_BATCH, int(per_second * BATCH_SECONDS)))


class SharedRateLimiter:
    """Spaces the sends of every process that uses the same Redis key at `per_second`.

    Slots are taken from Redis a batch at a time (`batch` consecutive slots of the shared
    stream, at most BATCH_SECONDS of it), and handed to this process's sends one by one,
    each at its own time: the stream the relay sees stays even across all workers, and a
    worker makes one round trip per batch instead of one per message."""

    def __init__(self, redis_url: str, key: str, per_second: float) -> None:
        import redis.asyncio

        self.key = key
        self.interval_us = max(1, round(1_000_000 / per_second))
        self.batch = batch_size(per_second)
        self.round_trips = 0
        self._client: Any = redis.asyncio.Redis.from_url(redis_url)
        self._take_slots = self._client.register_script(_TAKE_SLOTS)
        self._slots: collections.deque[float] = collections.deque()  # event-loop times
        self._refill: asyncio.Lock | None = None

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        slot = await self._next_slot(loop)
        delay = slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _next_slot(self, loop: asyncio.AbstractEventLoop) -> float:
        if self._refill is None:
            self._refill = asyncio.Lock()
        while True:
            stale = loop.time() - STALE_SECONDS
            while self._slots and self._slots[0] < stale:
                self._slots.popleft()
            if self._slots:
                return self._slots.popleft()
            async with self._refill:  # one round trip at a time; the others take its slots
                if not self._slots:
                    await self._take(loop)

    async def _take(self, loop: asyncio.AbstractEventLoop) -> None:
        wait_us = int(await self._take_slots(keys=[self.key], args=[self.interval_us, self.batch]))
        self.round_trips += 1
        first = loop.time() + wait_us / 1_000_000
        interval = self.interval_us / 1_000_000
        self._slots.extend(first + n * interval for n in range(self.batch))

    async def close(self) -> None:
        await self._client.aclose()
