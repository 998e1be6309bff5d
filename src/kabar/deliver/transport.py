"""The transport port: a pool of connections ("lanes") that each send one message at a time.

A lane's one method is `send(envelope, message) -> Reply`; it never raises for what the
server or the network did, it reports it as a Reply, and the Reply says what the ledger
should do: sent, retry later, bounce the address, pause the issue (a sender problem) or
give up on this message.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from kabar.deliver.ratelimit import Limiter

Kind = Literal["sent", "retry", "bounce", "sender", "failed"]
Stage = Literal["connect", "tls", "auth", "mail", "rcpt", "data"]

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")


@dataclass(frozen=True)
class Envelope:
    sender: str  # MAIL FROM
    recipient: str  # RCPT TO
    message_id: str


@dataclass(frozen=True)
class Reply:
    """What the server said (code 0: nothing, the connection timed out or dropped)."""

    code: int
    text: str = ""
    stage: Stage = "data"

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text, such as 5.1.1."""
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else None

    @property
    def kind(self) -> Kind:
        if 200 <= self.code < 300:
            return "sent"
        if self.stage == "tls":
            return "sender"  # an untrusted certificate or no STARTTLS: fix the config
        if self.code == 0 or 400 <= self.code < 500:
            return "retry"  # timeouts, disconnects and 4xx are transient
        enhanced = self.enhanced or ""
        if self.stage in ("connect", "auth", "mail") or enhanced.startswith("5.7."):
            return "sender"  # refused the sender or the connection: no recipient is at fault
        if enhanced.startswith("5.1."):
            return "bounce"  # the mailbox does not exist
        return "failed"

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip() if self.code else self.text


class Lane(ABC):
    """One connection's worth of sending; a lane is used by one task at a time."""

    @abstractmethod
    async def send(self, envelope: Envelope, message: bytes) -> Reply: ...

    async def close(self) -> None:
        return None


class Transport:
    """A pool of lanes with a shared rate limit. Borrow a lane with `async with lane()`."""

    name = "transport"

    def __init__(self, lanes: list[Lane], *, limiter: Limiter | None = None) -> None:
        self._lanes = lanes
        self._pool: asyncio.Queue[Lane] | None = None
        self._limiter = limiter

    @property
    def connections(self) -> int:
        return len(self._lanes)

    @asynccontextmanager
    async def lane(self) -> AsyncIterator[Lane]:
        if self._pool is None:
            self._pool = asyncio.Queue()
            for lane in self._lanes:
                self._pool.put_nowait(lane)
        lane = await self._pool.get()
        try:
            yield lane
        finally:
            self._pool.put_nowait(lane)

    async def send(self, lane: Lane, envelope: Envelope, message: bytes) -> Reply:
        if self._limiter is not None:
            await self._limiter.wait()
        return await lane.send(envelope, message)

    async def send_one(self, envelope: Envelope, message: bytes) -> Reply:
        """Send a single message (a confirmation mail) on any free lane."""
        async with self.lane() as lane:
            return await self.send(lane, envelope, message)

    async def close(self) -> None:
        for lane in self._lanes:
            await lane.close()
        if self._limiter is not None:
            await self._limiter.close()

    def describe(self) -> str:
        return self.name


SendFunction = Callable[[Envelope, bytes], Awaitable[Reply]]


class _FunctionLane(Lane):
    def __init__(self, function: SendFunction) -> None:
        self.function = function

    async def send(self, envelope: Envelope, message: bytes) -> Reply:
        return await self.function(envelope, message)


class FunctionTransport(Transport):
    """For unit tests of the logic around a transport: each send calls `function`."""

    name = "function"

    def __init__(self, function: SendFunction, *, connections: int = 1) -> None:
        super().__init__([_FunctionLane(function) for _ in range(connections)])
