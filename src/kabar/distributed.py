"""Distributed delivery (engine.mode: dramatiq). `kabar run` or `kabar send` queue one
message per chunk on a Dramatiq broker (Redis or RabbitMQ); `kabar worker` processes on any
number of machines run them with the same `Sender.deliver_chunk` coroutine the embedded
mode runs in-process, as an async Dramatiq actor.

A message is only a hint ("chunk N of issue K may have work"); the ledger in PostgreSQL
holds the truth. Workers claim deliveries with FOR UPDATE SKIP LOCKED, so two messages for
one chunk split its work between them, and a lost message loses nothing: when no
delivery of an issue has been recorded for engine.resubmit_after, the coordinator queues
its chunks that still have work again (the sweeper). That is also why Dramatiq never
retries a message itself.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kabar.config import Config, Engine
from kabar.deliver import open_transport
from kabar.deliver.ratelimit import SharedRateLimiter
from kabar.deliver.send import Sender, Tally, in_thread
from kabar.ledger import Ledger, Outcome
from kabar.store import Store
from kabar.subscribers import link_secret

log = logging.getLogger(__name__)

ACTOR_NAME = "kabar.deliver_chunk"
_SOONEST_LOOK = 0.25  # seconds: the coordinator looks at the ledger at most this often
# The worker's consumer polls an empty queue at most this far apart (Dramatiq's default is
# 1 s): it also bounds how long a worker idles before it fetches the next chunk's message.
_FETCH_EVERY_MS = 200
# The sweeper, not Dramatiq, decides when a chunk runs again; and a chunk may take long at
# a low shared rate limit, so Dramatiq's 10-minute default time limit would cut it short.
_ACTOR_OPTIONS = {"max_retries": 0, "time_limit": int(timedelta(days=1).total_seconds() * 1000)}


def shown(url: str) -> str:
    """A URL fit for logs: any password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_broker(engine: Engine) -> Any:
    url = engine.broker
    if url.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


# --- the coordinator's side ------------------------------------------------------------------


class DramatiqDispatcher:
    """Queues chunks for `kabar worker` processes; the ledger tells when they are done.

    `settled(issue_key)` counts the issue's deliveries that have a result: while it grows,
    workers are getting through the queue, however long it is. Only once it has stood
    still for engine.resubmit_after are the chunks that still have work queued again.
    """

    def __init__(
        self,
        engine: Engine,
        settled: Callable[[str], int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.broker = open_broker(engine)
        self.settled = settled
        self.clock = clock
        self.resubmit_after = engine.resubmit_after.total_seconds()
        self._queued: dict[tuple[str, int], float] = {}  # (issue, chunk) → when last queued
        self._progress: dict[str, tuple[int, float]] = {}  # issue → (settled, since when)
        self._pace: dict[str, _Pace] = {}  # issue → how fast its chunks run out of work

    async def submit(self, issue_key: str, chunks: Sequence[int]) -> None:
        """Queue each chunk with work that has no message out. A chunk that had no work
        since its last message (it was drained, then a retry came due) gets one at once."""
        now = self.clock()
        self._pace.setdefault(issue_key, _Pace(len(chunks), now)).seen(len(chunks), now)
        for key, chunk in list(self._queued):
            if key == issue_key and chunk not in chunks:
                del self._queued[(key, chunk)]
        due = [c for c in chunks if (issue_key, c) not in self._queued]
        if await self._stalled(issue_key, now):
            lost = [
                c for c in chunks
                if (issue_key, c) in self._queued
                and now - self._queued[(issue_key, c)] >= self.resubmit_after
            ]  # fmt: skip
            if lost:
                log.warning(
                    "%s: no delivery recorded for %s while chunks %s have work: their "
                    "messages were lost (is a kabar worker running? did one die?); queued again",
                    issue_key, self.engine.resubmit_after, _listed(lost),
                )  # fmt: skip
            due += lost
        if not due:
            return
        await in_thread(self._enqueue, issue_key, due)
        for chunk in due:
            self._queued[(issue_key, chunk)] = now
        log.info("%s: %d chunks queued for workers on %s", issue_key, len(due), self.describe())

    async def _stalled(self, issue_key: str, now: float) -> bool:
        settled = await in_thread(self.settled, issue_key)
        last = self._progress.get(issue_key)
        if last is None or last[0] != settled:
            self._progress[issue_key] = (settled, now)
            return False
        return now - last[1] >= self.resubmit_after

    def _enqueue(self, issue_key: str, chunks: Sequence[int]) -> None:
        from dramatiq import Message

        for chunk in chunks:
            message: Message[None] = Message(
                self.engine.queue, ACTOR_NAME, (issue_key, chunk), kwargs={}, options={}
            )
            self.broker.enqueue(message)

    async def join(self) -> bool:
        return False  # workers elsewhere run the chunks

    def look_again_in(self, issue_key: str, longest: float) -> float:
        """Sooner than `longest` when the pace at which chunks have run out of work says
        the rest will be done by then: the issue is closed within a fraction of a second
        of its last delivery, not up to `longest` after it."""
        pace = self._pace.get(issue_key)
        return longest if pace is None else pace.next_look(longest, self.clock())

    def describe(self) -> str:
        return f"queue {self.engine.queue} at {shown(self.engine.broker)}"

    async def close(self) -> None:
        await in_thread(self.broker.close)


@dataclasses.dataclass
class _Pace:
    """How fast an issue's chunks run out of work, as the coordinator saw it."""

    first: int  # chunks with work at the first look
    since: float
    left: int = -1  # chunks with work at the last look
    changed: float = 0.0  # when `left` last changed

    def seen(self, left: int, now: float) -> None:
        if left != self.left:
            self.left, self.changed = left, now

    def next_look(self, longest: float, now: float) -> float:
        """A quarter of the time the chunks left take at the pace so far, within
        [_SOONEST_LOOK, longest]: looks come closer together as the end nears, and the
        last chunk is noticed within a quarter of a chunk's time of its end. Back to
        `longest` once no chunk has run out of work for that long (a worker died, say:
        its claims wait for their lease)."""
        done = self.first - self.left
        if done <= 0 or now - self.changed > longest:
            return longest
        per_chunk = (self.changed - self.since) / done
        return max(_SOONEST_LOOK, min(longest, self.left * per_chunk / 4))


def _listed(chunks: Sequence[int]) -> str:
    return ", ".join(str(c) for c in chunks[:10]) + (" …" if len(chunks) > 10 else "")


# --- the worker's side -----------------------------------------------------------------------


def shared_limiter(config: Config) -> SharedRateLimiter | None:
    """The SMTP relay's rate limit, held in Redis for all workers together."""
    smtp = config.delivery.smtp
    if config.delivery.transport != "smtp" or config.engine.limiter is None:
        return None
    key = f"kabar:rate:{smtp.host}:{smtp.port}"
    return SharedRateLimiter(config.engine.limiter, key, smtp.rate_per_second)


class ChunkWorker:
    """What a `kabar worker` process runs: one Sender on Dramatiq's event loop thread."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.sender: Sender | None = None
        self.tallies: dict[str, Tally] = {}

    def _make_sender(self) -> Sender:
        transport = open_transport(self.config, limiter=shared_limiter(self.config))
        return Sender(
            self.config, Ledger(self.store.engine), transport,
            secret=link_secret(self.config, self.store.engine), progress=self.progress,
        )  # fmt: skip

    def progress(self, issue_key: str, outcome: Outcome) -> None:
        self.tallies.setdefault(issue_key, Tally()).add(outcome.state)

    async def deliver_chunk(self, issue_key: str, chunk: int) -> None:
        if self.sender is None:  # made on the event loop that sends
            self.sender = self._make_sender()
        before = dataclasses.replace(self.tallies.setdefault(issue_key, Tally()))
        started = time.monotonic()
        await self.sender.deliver_chunk(issue_key, chunk)
        after = self.tallies[issue_key]
        done = {
            f.name: getattr(after, f.name) - getattr(before, f.name)
            for f in dataclasses.fields(Tally)
        }
        if any(done.values()):
            log.info(
                "issue=%s chunk=%d %s seconds=%.1f",
                issue_key, chunk, " ".join(f"{k}={v}" for k, v in done.items()),
                time.monotonic() - started,
            )  # fmt: skip

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()
            await self.sender.transport.close()


def _lifecycle(chunk_worker: ChunkWorker) -> Any:
    """Middleware that closes the Sender on Dramatiq's event loop before the loop stops."""
    from dramatiq.asyncio import get_event_loop_thread
    from dramatiq.middleware import Middleware

    class SenderLifecycle(Middleware):
        def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
            chunk_worker.stop()  # finish the sends in flight, hand back the rest

        def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
            loop_thread = get_event_loop_thread()
            if loop_thread is not None:
                loop_thread.run_coroutine(chunk_worker.close())

    return SenderLifecycle()


def run_worker(config: Config, store: Store, *, stop: threading.Event | None = None) -> None:
    """Serve the broker's chunk messages until SIGTERM or SIGINT (or `stop`), then let the
    chunks in hand finish their sends in flight and hand the rest back to the ledger."""
    import dramatiq
    from dramatiq.middleware.asyncio import AsyncIO

    engine = config.engine
    broker = open_broker(engine)
    broker.add_middleware(AsyncIO())
    chunk_worker = ChunkWorker(config, store)
    broker.add_middleware(_lifecycle(chunk_worker))  # after AsyncIO: shut down before it
    deliver: Any = chunk_worker.deliver_chunk  # Actor's generics do not take a bound method
    dramatiq.Actor(
        deliver, broker=broker, actor_name=ACTOR_NAME,
        queue_name=engine.queue, priority=0, options=dict(_ACTOR_OPTIONS),
    )  # fmt: skip
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if not stop.is_set():
            log.warning(
                "%s: finishing the sends in flight, then stopping", signal.Signals(signum).name
            )
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    # One chunk at a time: a chunk's lanes hold all of the transport's connections. The
    # next chunk's message is fetched while this one sends, so the worker goes on with it
    # the moment this one ends: with one message in hand, the consumer fetched the next
    # only after its idle back-off, a third of a second per chunk on average. A worker
    # that dies strands that unstarted message too; Redis requeues it (or the sweeper does).
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=_FETCH_EVERY_MS)
    worker.queue_prefetch = 2
    worker.start()
    log.info("worker: serving queue %s at %s", engine.queue, shown(engine.broker))
    try:
        stop.wait()
    finally:
        worker.stop()
        broker.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("worker: stopped; %s", _summary(chunk_worker.tallies) or "nothing sent")


def _summary(tallies: dict[str, Tally]) -> str:
    return "; ".join(
        f"{key}: {tally.sent} sent, {tally.deferred} deferred, {tally.failed} failed"
        for key, tally in tallies.items()
    )
