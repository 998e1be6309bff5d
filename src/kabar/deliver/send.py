"""The sending loop: `Sender.deliver_chunk(issue_key, chunk)` claims deliveries from the
ledger, sends them over the transport's lanes, and records each result.

The order that makes a crash lose nothing: the claim is committed before the message goes
out, the result after the server's reply. A lane sends its next message only once its last
result is committed, so at most one message per connection is ever sent-but-unrecorded:
that bounds the duplicates a crash can cause. Results from all lanes are committed together
(group commit), so the database costs one transaction per round of sends, not one per
message, and the next message is built while the last result commits.

`deliver_chunk` is the unit of work: in-process a `LocalDispatcher` runs chunks one after
another; a distributed dispatcher runs the same coroutine in worker processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Protocol, TypeVar

from kabar.config import Config
from kabar.deliver.transport import Envelope, Reply, Transport
from kabar.digest import PreparedIssue, load_prepared
from kabar.ledger import Claimed, DeliveryState, Issue, Ledger, Outcome
from kabar.subscribers import Links

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
# Read once: crash_point runs for every message, and the tests set it per process.
_CRASH_AT = os.environ.get("KABAR_CRASH_AT", "")
_crash_counts: dict[str, int] = {}


def utcnow() -> datetime:
    return datetime.now(UTC)


def crash_point(name: str) -> None:
    """For crash tests: KABAR_CRASH_AT=NAME[:N] kills this process with SIGKILL the N-th
    time (default: the first) it passes the named point."""
    if not _CRASH_AT:
        return
    point, _, nth = _CRASH_AT.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def sender_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def in_thread(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Database work off the event loop, so the lanes keep sending meanwhile."""
    return await asyncio.to_thread(function, *args, **kwargs)


class Dispatcher(Protocol):
    """Where chunks run: in this process, or in workers elsewhere (kabar.distributed)."""

    async def submit(self, issue_key: str, chunks: Sequence[int]) -> None:
        """Hand over the issue's chunks that have work due now."""

    async def join(self) -> bool:
        """Wait for the submitted chunks to run here (True), or return False at once when
        workers elsewhere run them (the caller looks at the ledger again later)."""

    def describe(self) -> str: ...

    async def close(self) -> None: ...


class LocalDispatcher:
    """Runs submitted chunks in this process, one at a time: the lanes inside a chunk are
    where the concurrency is."""

    def __init__(
        self, deliver_chunk: Callable[[str, int], Awaitable[None]], transport: Transport
    ) -> None:
        self.deliver_chunk = deliver_chunk
        self.transport = transport
        self._queue: list[tuple[str, int]] = []
        self._lock = asyncio.Lock()

    async def submit(self, issue_key: str, chunks: Sequence[int]) -> None:
        self._queue.extend((issue_key, chunk) for chunk in chunks)

    async def join(self) -> bool:
        async with self._lock:
            first = True
            while self._queue:
                if not first:
                    crash_point("between_chunks")
                first = False
                await self.deliver_chunk(*self._queue.pop(0))
        return True

    def describe(self) -> str:
        return self.transport.describe()

    async def close(self) -> None:
        return None


@dataclass
class Tally:
    """What this process did, per issue, for progress bars and logs."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0

    def add(self, state: str) -> None:
        name = "deferred" if state == "retry_wait" else state
        if hasattr(self, name):
            setattr(self, name, getattr(self, name) + 1)


Progress = Callable[[str, Outcome], None]


@dataclass
class _Recorder:
    """Group commit: results wait in `pending` while a write is in flight, and a write
    waits a moment for `group` results, since each commit rewrites the same pages."""

    ledger: Ledger
    clock: Clock
    group: int = 1
    window: float = 0.002
    pending: list[tuple[Outcome, asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue a result for the next commit; the future is done once it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((outcome, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        while self.pending:
            if len(self.pending) < self.group:
                await asyncio.sleep(self.window)
            batch, self.pending = self.pending, []
            try:
                written = await in_thread(
                    self.ledger.record, [outcome for outcome, _ in batch], now=self.clock()
                )
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            if written < len(batch):
                log.warning(
                    "%d results were not recorded: their leases ran out and another sender "
                    "took them over",
                    len(batch) - written,
                )
            for _, future in batch:
                future.set_result(None)


class Sender:
    """Sends chunks of issues over one transport. One per process."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        transport: Transport,
        *,
        secret: bytes,
        clock: Clock = utcnow,
        owner: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.transport = transport
        self.links = Links(config, secret)
        self.clock = clock
        self.owner = owner or sender_id()
        self.progress = progress
        self.lease = config.delivery.lease
        self.max_attempts = config.delivery.smtp.max_attempts
        self.stopping = False
        self.paused: set[str] = set()
        self._prepared: dict[str, PreparedIssue] = {}
        self._held: dict[str, int] = {}  # claim token → deliveries not yet resolved
        self._recorder = _Recorder(ledger, clock, group=max(1, transport.connections // 2))
        self._heartbeat: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Finish the sends in flight, hand back the rest, take nothing new."""
        self.stopping = True

    # --- the unit of work ------------------------------------------------------------------

    async def deliver_chunk(self, issue_key: str, chunk: int) -> None:
        issue = await in_thread(self.ledger.issue, issue_key)
        if issue is None or issue.state != "sending" or issue.prepared is None:
            return
        self.paused.discard(issue_key)  # sending again: an admin resumed it
        prepared = self._prepared_issue(issue)
        envelope_from = self._envelope_sender(issue)
        lanes = self.transport.connections
        queue: asyncio.Queue[Claimed | None] = asyncio.Queue()
        untried: list[Claimed] = []
        workers = [
            asyncio.create_task(self._lane_worker(prepared, envelope_from, queue, untried))
            for _ in range(lanes)
        ]
        self._start_heartbeat()
        try:
            while not (self.stopping or issue_key in self.paused):
                if queue.qsize() > lanes:
                    await asyncio.sleep(0.005)
                    continue
                batch = await in_thread(
                    self.ledger.claim,
                    issue_key,
                    chunk,
                    owner=self.owner,
                    limit=lanes * 16,
                    lease=self.lease,
                    now=self.clock(),
                )
                if not batch:
                    break
                crash_point("after_claim")
                self._held[batch[0].claim] = len(batch)
                for claimed in batch:
                    queue.put_nowait(claimed)
        finally:
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers)
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    untried.append(item)
            if untried:
                await in_thread(self.ledger.release, untried)
                self._resolve(untried)

    async def _lane_worker(
        self,
        prepared: PreparedIssue,
        envelope_from: str,
        queue: asyncio.Queue[Claimed | None],
        untried: list[Claimed],
    ) -> None:
        """One connection's loop. While the last result commits, the next message is
        built; it goes out only once that commit is done, so at most one message per
        connection is ever sent and unrecorded."""
        key = prepared.issue_key
        last: tuple[Claimed, Outcome, asyncio.Future[None]] | None = None
        async with self.transport.lane() as lane:
            while (claimed := await queue.get()) is not None:
                if self._halted(key):
                    untried.append(claimed)
                    continue
                work = await self._build(prepared, claimed)
                if last is not None:
                    await self._settle(key, *last)
                    last = None
                if self._halted(key) and not isinstance(work, Outcome):
                    untried.append(claimed)
                    continue
                if isinstance(work, Outcome):
                    outcome = work
                else:
                    envelope = Envelope(envelope_from, claimed.email, claimed.message_id)
                    reply = await self.transport.send(lane, envelope, work)
                    outcome = await self._judge(key, claimed, reply)
                last = (claimed, outcome, self._recorder.submit(outcome))
            if last is not None:
                await self._settle(key, *last)

    def _halted(self, issue_key: str) -> bool:
        return self.stopping or issue_key in self.paused

    async def _build(self, prepared: PreparedIssue, claimed: Claimed) -> bytes | Outcome:
        """The subscriber's message, or the outcome when there is nothing to send."""
        if claimed.status != "active":  # left after the audience was taken
            return self._outcome(claimed, "skipped", None, f"subscriber is {claimed.status}")
        recipient = self.links.recipient(
            claimed.subscriber_id, claimed.email, claimed.name, claimed.locale
        )
        try:
            return prepared.message_for(recipient)
        except Exception as exc:
            log.exception("%s: cannot build the message", prepared.issue_key)
            await self._pause(prepared.issue_key, f"cannot build the message: {exc}")
            return self._outcome(claimed, "pending", None, "", counts_attempt=False)

    async def _settle(
        self, issue_key: str, claimed: Claimed, outcome: Outcome, committed: asyncio.Future[None]
    ) -> None:
        await committed
        self._resolve([claimed])
        if self.progress is not None:
            self.progress(issue_key, outcome)

    async def _judge(self, issue_key: str, claimed: Claimed, reply: Reply) -> Outcome:
        kind = reply.kind
        if kind == "sent":
            crash_point("after_250_before_commit")
            return self._outcome(claimed, "sent", reply.code, reply.text)
        if kind == "retry":
            attempts = claimed.attempts + 1
            if attempts >= self.max_attempts:
                return self._outcome(claimed, "failed", reply.code, reply.text)
            delay = self.backoff(attempts)
            return self._outcome(
                claimed, "retry_wait", reply.code, reply.text, next_attempt=self.clock() + delay
            )
        if kind == "bounce":
            log.info("%s: %s bounced: %s", issue_key, claimed.email, reply)
            return self._outcome(claimed, "bounced", reply.code, reply.text)
        if kind == "sender":
            await self._pause(issue_key, f"sender problem: {reply}")
            return self._outcome(claimed, "pending", reply.code, reply.text)
        return self._outcome(claimed, "failed", reply.code, reply.text)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential, capped, with full jitter in its upper half."""
        delivery = self.config.delivery
        ceiling = min(delivery.retry_backoff * 2 ** (attempts - 1), delivery.retry_backoff_max)
        jittered: timedelta = ceiling * random.uniform(0.5, 1.0)
        return jittered

    def _outcome(
        self,
        claimed: Claimed,
        state: DeliveryState,
        code: int | None,
        reply: str,
        *,
        next_attempt: datetime | None = None,
        counts_attempt: bool = True,
    ) -> Outcome:
        return Outcome(
            claimed.delivery_id, claimed.claim, state, code, reply, next_attempt,
            claimed.subscriber_id, counts_attempt,
        )  # fmt: skip

    async def _pause(self, issue_key: str, detail: str) -> None:
        if issue_key in self.paused:
            return
        self.paused.add(issue_key)
        moved = await in_thread(
            self.ledger.transition, issue_key, "sending", "paused", now=self.clock(), detail=detail
        )
        if moved:
            log.error(
                "%s: paused: %s. Fix it, then: kabar send --resume %s", issue_key, detail, issue_key
            )

    # --- helpers ---------------------------------------------------------------------------

    def _prepared_issue(self, issue: Issue) -> PreparedIssue:
        if issue.key not in self._prepared:
            assert issue.prepared is not None
            self._prepared[issue.key] = load_prepared(self.config, issue.prepared)
        return self._prepared[issue.key]

    def _envelope_sender(self, issue: Issue) -> str:
        mailing_list = self.config.mailing_list(issue.list_id)
        return parseaddr(mailing_list.from_)[1]

    def _resolve(self, claims: Iterable[Claimed]) -> None:
        for claimed in claims:
            left = self._held.get(claimed.claim, 0) - 1
            if left > 0:
                self._held[claimed.claim] = left
            else:
                self._held.pop(claimed.claim, None)

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        """Keep this sender's claims alive while it works on them."""
        period = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            if self._held:
                await in_thread(
                    self.ledger.renew, list(self._held), lease_until=self.clock() + self.lease
                )

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
