"""The sending loop: `Sender.deliver_chunk(issue_key, chunk)` claims deliveries from the
ledger, sends them over the transport's lanes, and records each result.

The order that makes a crash lose nothing: the claim is committed before the message goes
out, the result after the server's reply. A lane sends its next message only once its last
result is committed, so at most one message per connection is ever sent-but-unrecorded:
that bounds the duplicates a crash can cause. So each lane waits on the commit of its
last result: a ledger thread commits whatever results have arrived since its last commit
in one transaction (group commit), and the next message is built meanwhile.

`deliver_chunk` is the unit of work: in-process a `LocalDispatcher` runs chunks one after
another; a distributed dispatcher runs the same coroutine in worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Protocol, TypeVar

from kabar import verp
from kabar.config import Config
from kabar.deliver import breaker
from kabar.deliver.transport import Envelope, Reply, Transport
from kabar.digest import PreparedIssue, load_prepared
from kabar.ledger import Claimed, DeliveryState, Issue, Ledger, Outcome, ResultWriter
from kabar.observe.metrics import SEND_SECONDS, count_message
from kabar.subscribers import Links

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
# Read once: crash_point runs for every message, and the tests set it per process.
_CRASH_AT = os.environ.get("KABAR_CRASH_AT", "")
_crash_counts: dict[str, int] = {}
_PREPARED_KEPT = 4  # issues whose rendering a sender keeps loaded


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

    def look_again_in(self, issue_key: str, longest: float) -> float:
        """After join() returned False: seconds until the ledger is worth another look,
        at most `longest`."""

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

    def look_again_in(self, issue_key: str, longest: float) -> float:
        return longest

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


_Pending = tuple[Outcome, "asyncio.Future[None]"]  # a result, and who waits for its commit


class _Recorder:
    """Group commit on a writer thread of its own. Each result is queued as its reply
    arrives; the thread commits everything queued since its last commit in one
    transaction, then wakes the lanes waiting on it. A lane's next send waits for this
    commit, so its latency, not its cost, is what bounds throughput: there is no timed
    window to fill a group, and no hop through the event loop before the write starts
    (see `_no_wakeup_preemption` for how the groups form where the two share a core)."""

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self.ledger = ledger
        self.clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue a result for the next commit; the future is done once it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="kabar-ledger", daemon=True)
            self._thread.start()
        self._queue.put((outcome, future))
        return future

    def _write(self) -> None:
        """The ledger thread: commit whatever has queued up, until `close` queues None."""
        _no_wakeup_preemption()
        with self.ledger.result_writer() as writer:
            while True:
                batch = [self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                results = [item for item in batch if item is not None]
                if results:
                    self._commit(writer, results)
                if len(results) < len(batch):
                    return

    def _commit(self, writer: ResultWriter, batch: list[_Pending]) -> None:
        error: Exception | None = None
        try:
            written = writer.record([outcome for outcome, _ in batch], now=self.clock())
        except Exception as exc:
            error = exc
        else:
            if written < len(batch):
                log.warning(
                    "%d results were not recorded: their leases ran out and another sender "
                    "took them over",
                    len(batch) - written,
                )
        for loop in {future.get_loop() for _, future in batch}:  # one wake-up per loop
            futures = [future for _, future in batch if future.get_loop() is loop]
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, futures, error)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await in_thread(thread.join)


def _no_wakeup_preemption() -> None:
    """Make the calling thread SCHED_BATCH (Linux): the same share of the CPU as before,
    but waking up no longer preempts the thread that is running. Without it, each result
    queued mid-send woke the ledger thread onto the event loop's core, only for it to
    wait there for the GIL, and then commit one or two rows. Now it commits once the loop
    waits, taking in every result that arrived meanwhile: fewer switches, fewer commits."""
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):  # not allowed here: stay as we are
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():  # its lane was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


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
        self._recorder = _Recorder(ledger, clock)
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
                if any(worker.done() for worker in workers):
                    break  # a lane failed (say, its result could not be committed)
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
            ended = await asyncio.gather(*workers, return_exceptions=True)
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    untried.append(item)
            if untried:
                await in_thread(self.ledger.release, untried)
                self._resolve(untried)
            for error in ended:
                if isinstance(error, BaseException):
                    raise error

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
                    sender = self._verp_sender(key, claimed) or envelope_from
                    envelope = Envelope(sender, claimed.email, claimed.message_id)
                    started = time.perf_counter()
                    reply = await self.transport.send(lane, envelope, work)
                    SEND_SECONDS.observe(time.perf_counter() - started)
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
            claimed.subscriber_id, claimed.email, claimed.name, claimed.locale,
            variant=claimed.variant,
        )  # fmt: skip
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
        count_message(outcome.state, outcome.code)
        if outcome.state == "bounced" and issue_key not in self.paused:
            await self._watch_bounce_rate(issue_key)
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
        """Loaded once per process and issue, for all its chunks; a long-lived worker
        keeps only the issues it sent last."""
        prepared = self._prepared.pop(issue.key, None)
        if prepared is None:
            assert issue.prepared is not None
            prepared = load_prepared(self.config, issue.prepared)
        self._prepared[issue.key] = prepared  # now the newest
        while len(self._prepared) > _PREPARED_KEPT:
            del self._prepared[next(iter(self._prepared))]
        return prepared

    def _envelope_sender(self, issue: Issue) -> str:
        mailing_list = self.config.mailing_list(issue.list_id)
        return parseaddr(mailing_list.from_)[1]

    async def _watch_bounce_rate(self, issue_key: str) -> None:
        """Pause the issue when its hard bounces pass the share (kabar.deliver.breaker)."""
        policy = self.config.bounces.policy
        reason = await in_thread(
            breaker.check, self.ledger.engine, issue_key, policy, now=self.clock()
        )
        if reason:
            self.paused.add(issue_key)

    def _verp_sender(self, issue_key: str, claimed: Claimed) -> str | None:
        """The delivery's own envelope sender (bounces.address), so what comes back names
        it; None without one configured."""
        pattern = self.config.bounces.address
        if not pattern:
            return None
        token = verp.delivery_token(
            self.links.secret, claimed.delivery_id, issue_key, claimed.subscriber_id
        )
        return verp.address(pattern, token)

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
        await self._recorder.close()
