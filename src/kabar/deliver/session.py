"""What a sending command sets up around an IssueRunner: the transport, the link secret,
SIGTERM/SIGINT handling (drain in-flight sends, hand back the rest) and the output: a rich
progress bar in a terminal, structured log lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from kabar.config import Config
from kabar.deliver.issue import IssueRunner, open_transport
from kabar.deliver.send import Clock, Dispatcher, Tally, utcnow
from kabar.ledger import Ledger, Outcome
from kabar.schedule import Periodic
from kabar.store import Store
from kabar.subscribers import Subscribers, link_secret

log = logging.getLogger(__name__)

_LOG_EVERY = 5.0  # seconds between progress lines when not on a terminal


def import_lists(config: Config, store: Store) -> None:
    """Import each list's `import_from` CSV (new addresses only) before sending."""
    subscribers = Subscribers(store.engine)
    for mailing_list in config.lists:
        if not mailing_list.import_from:
            continue
        path = config.resolve(mailing_list.import_from)
        if not path.exists():
            log.warning("list %s: import_from %s does not exist", mailing_list.id, path)
            continue
        report = subscribers.import_csv(path, mailing_list.id)
        invalid = len(report.rejected) - report.existing
        log.info(
            "list %s: %d new subscribers from %s (%d invalid rows)",
            mailing_list.id, report.imported, path, invalid,
        )  # fmt: skip


@dataclass
class _Display:
    """Progress per issue: a bar on a terminal, a log line every few seconds otherwise."""

    ledger: Ledger
    bar: Any = None
    tallies: dict[str, Tally] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # first result, per issue
    last_line: float = field(default_factory=time.monotonic)

    def __call__(self, key: str, outcome: Outcome) -> None:
        self.started.setdefault(key, time.monotonic())
        tally = self.tallies.setdefault(key, Tally())
        tally.add(outcome.state)
        now = time.monotonic()
        if self.bar is not None:
            self._update_bar(key, tally)
        elif now - self.last_line >= _LOG_EVERY:
            self.last_line = now
            self.log_line(key)

    def _update_bar(self, key: str, tally: Tally) -> None:
        if key not in self.tasks:
            issue = self.ledger.issue(key)
            self.tasks[key] = self.bar.add_task(key, total=issue.audience if issue else None)
        done = tally.sent + tally.failed + tally.bounced + tally.skipped
        extra = f" ({tally.deferred} deferred)" if tally.deferred else ""
        self.bar.update(self.tasks[key], completed=done, description=f"{key}{extra}")

    def log_line(self, key: str) -> None:
        tally = self.tallies.get(key, Tally())
        elapsed = max(time.monotonic() - self.started.get(key, time.monotonic()), 1e-3)
        log.info(
            "issue=%s sent=%d deferred=%d failed=%d bounced=%d skipped=%d rate=%.0f/s",
            key, tally.sent, tally.deferred, tally.failed, tally.bounced, tally.skipped,
            tally.sent / elapsed,
        )  # fmt: skip


class Session:
    """`async with Session(config, store) as runner:` gives an IssueRunner ready to send."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock = utcnow,
        progress_bar: bool | None = None,
        prints_outcome: bool = False,
    ) -> None:
        self.config = config
        self.prints_outcome = prints_outcome  # the command prints each issue's outcome
        self.store = store
        self.clock = clock
        self.progress_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        self.display = _Display(Ledger(store.engine))
        self.runner: IssueRunner | None = None
        self.stopped = asyncio.Event()  # set by SIGTERM or SIGINT

    async def __aenter__(self) -> IssueRunner:
        secret = link_secret(self.config, self.store.engine)
        transport = open_transport(self.config)
        if self.progress_bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.display.bar = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), transient=True,
            )  # fmt: skip
            self.display.bar.start()
        self.runner = IssueRunner(
            self.config,
            self.store,
            transport,
            secret=secret,
            clock=self.clock,
            progress=self.display,
            dispatcher=self._dispatcher(),
            finish_level=logging.DEBUG if self.prints_outcome else logging.INFO,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        return self.runner

    def _dispatcher(self) -> Dispatcher | None:
        """Workers elsewhere in dramatiq mode; None: this process sends (embedded)."""
        if self.config.engine.mode != "dramatiq":
            return None
        from kabar.distributed import DramatiqDispatcher

        return DramatiqDispatcher(self.config.engine, Ledger(self.store.engine).settled)

    def _on_signal(self, signum: int) -> None:
        assert self.runner is not None
        if self.stopped.is_set():
            return
        self.stopped.set()
        log.warning("%s: finishing the sends in flight, then stopping", signal.Signals(signum).name)
        self.runner.stop()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if self.display.bar is not None:
            self.display.bar.stop()
        if self.runner is not None:  # each issue's outcome is printed or logged as it ends
            await self.runner.close()


class _Jobs:
    """The scheduler's jobs, done for real: ingest, feed builds, issue delivery."""

    def __init__(self, config: Config, store: Store, runner: IssueRunner) -> None:
        self.config = config
        self.store = store
        self.runner = runner

    async def ingest(self, source_id: str) -> bool:
        from kabar.ingest import ingest_source

        report = await asyncio.to_thread(
            ingest_source, self.config, self.store, self.config.source(source_id)
        )
        for problem in (*report.failures, *report.warnings):
            log.warning("%s", problem)
        log.info("%s", report.describe())
        return bool(report.stored.inserted or report.stored.updated)

    async def build_feed(self, feed_id: str) -> None:
        from kabar.deliver.storage import FeedStorage
        from kabar.feeds import build_feeds

        report = await asyncio.to_thread(
            build_feeds, self.config, self.store, FeedStorage.from_config(self.config),
            (feed_id,), dry_run=False, ping=True,
        )  # fmt: skip
        log.info("%s", report.describe())

    def start_issue(self, key: str) -> None:
        self.runner.start(key)


def _bounce_polls(config: Config, store: Store) -> list[Periodic]:
    """The bounce mailbox's poll (kabar.inbound), when bounces.mailbox is configured."""
    from kabar.inbound.poll import mailbox_poll
    from kabar.subscribers import link_secret

    if config.bounces.mailbox is None:
        return []
    poll = mailbox_poll(config, store.engine, link_secret(config, store.engine))
    return [poll] if poll else []


async def run_scheduler(config: Config, store: Store, *, once: bool, clock: Clock = utcnow) -> bool:
    """`kabar run`: False when --once could not get the lease or work is left undone."""
    from kabar.deliver.send import sender_id
    from kabar.schedule import Scheduler

    import_lists(config, store)
    session = Session(config, store, clock=clock, progress_bar=False)
    async with session as runner:
        jobs = _Jobs(config, store, runner)
        polls = _bounce_polls(config, store)
        scheduler = Scheduler(
            config, store.engine, jobs, owner=sender_id(), clock=clock, periodic=polls
        )
        if once:
            if not scheduler.acquire():
                log.error("another scheduler runs on this database: %s", scheduler.holder())
                return False
            try:
                runner.background_wait = False
                for _, _, poll in polls:
                    await poll()
                await scheduler.run_due()
                await runner.drain()
            finally:
                scheduler.release()
            return not Ledger(store.engine).issues(states=("paused",))
        await scheduler.serve(session.stopped)
        await runner.drain()
        return True
