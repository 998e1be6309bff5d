"""The run-time around an IssueRunner, for `kabar send` and `kabar run`: the transport, the
link secret, the dispatcher (this process, or Dramatiq workers), SIGTERM/SIGINT handling
(drain in-flight sends, hand back the rest), the output (a rich progress bar in a
terminal, structured log lines otherwise), what happens once an issue is sent (its web
archive), and the scheduler daemon's jobs."""

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
from kabar.deliver import open_transport
from kabar.deliver.issue import IssueRunner
from kabar.deliver.send import Clock, Dispatcher, Tally, utcnow
from kabar.ledger import Counts, Issue, Ledger, Outcome
from kabar.publish.archive import ArchiveSent
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
            on_sent=ArchiveSent(self.config),
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
        from kabar.publish.feeds import build_feeds
        from kabar.publish.storage import FeedStorage

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
                await _webhooks_once(config, store)
            finally:
                scheduler.release()
            return not Ledger(store.engine).issues(states=("paused",))
        await _with_operations(config, store, scheduler, jobs, session.stopped)
        await runner.drain()
        return True


# --- kabar send ---------------------------------------------------------------------------


class UnknownIssue(LookupError):
    """--resume names an issue the ledger does not have."""


@dataclass(frozen=True)
class SendRequest:
    digest_id: str | None  # None with resume_key
    resume_key: str | None = None
    at_once: bool = False
    dry_run: bool = False
    resend_failed: bool = False
    wait: bool = True


@dataclass(frozen=True)
class SendResult:
    """What `send_issue` did: nothing (nothing_due says why), a dry run (`preview` of a
    planned issue, or the `existing` one with its counts), or a delivery of `key`."""

    key: str = ""
    nothing_due: str = ""
    preview: dict[str, Any] | None = None
    existing: Issue | None = None
    existing_counts: Counts | None = None
    issue: Issue | None = None

    @property
    def done(self) -> bool:
        """Sent, or skipped with nothing new: anything else leaves work for later."""
        return self.issue is not None and self.issue.state in ("sent", "skipped")


def send_issue(config: Config, store: Store, request: SendRequest) -> SendResult:
    """`kabar send`: plan the digest's due issue (or take the one to resume), then show
    it (dry run) or import the lists and deliver it."""
    from kabar.deliver.issue import NothingDue, plan_issue
    from kabar.deliver.issue import dry_run as preview

    ledger = Ledger(store.engine)
    plan = None
    if request.resume_key is not None:
        if ledger.issue(request.resume_key) is None:
            raise UnknownIssue(f"no issue {request.resume_key!r} (kabar status lists them)")
        key = request.resume_key
    else:
        assert request.digest_id is not None
        digest = config.digest(request.digest_id)
        try:
            plan = plan_issue(config, ledger, digest, now=utcnow(), at_once=request.at_once)
        except NothingDue as exc:
            return SendResult(nothing_due=str(exc))
        key = plan.key
    if request.dry_run:
        if plan is not None:
            return SendResult(key=key, preview=preview(config, store, plan))
        existing = ledger.issue(key)
        assert existing is not None
        return SendResult(key=key, existing=existing, existing_counts=ledger.counts([key])[key])
    import_lists(config, store)
    revive_missed = plan is None or request.at_once

    async def deliver() -> Issue | None:
        async with Session(config, store, prints_outcome=True) as runner:
            if plan is not None:
                runner.create(plan)
            runner.reopen(key, resend_failed=request.resend_failed, revive_missed=revive_missed)
            return await runner.run(key, wait=request.wait)

    return SendResult(key=key, issue=asyncio.run(deliver()))


async def _webhooks_once(config: Config, store: Store) -> None:
    """`kabar run --once` (from cron) also sends the webhook events that are due."""
    from kabar.hooks.deliver import WebhookSender

    if not config.webhooks.endpoints:
        return
    webhooks = WebhookSender(config, store.engine)
    try:
        report = await webhooks.run_once()
        log.info("webhooks: %d sent, %d to retry", report.sent, report.failed)
    finally:
        await webhooks.close()


async def _with_operations(
    config: Config, store: Store, scheduler: Any, jobs: _Jobs, stopped: asyncio.Event
) -> None:
    """Serve the scheduler with what a daemon adds: webhooks out, config reloads (SIGHUP,
    file changes) and per-issue progress in the metrics (only while it holds the lease)."""
    from datetime import timedelta

    from kabar.hooks.deliver import WebhookSender
    from kabar.observe.metrics import export_issue_progress
    from kabar.observe.progress import issue_progress
    from kabar.reload import ConfigWatcher

    webhooks = WebhookSender(config, store.engine)

    def apply(new: Config) -> None:
        scheduler.reload(new)
        jobs.config = webhooks.config = new
        # New issues see new digests and lists; the transport (SMTP connections) stays.
        jobs.runner.config = jobs.runner.sender.config = new

    watcher = ConfigWatcher(config, apply)

    async def deliver_webhooks() -> None:
        report = await webhooks.run_once()
        if report.sent or report.failed:
            log.info("webhooks: %d sent, %d to retry", report.sent, report.failed)

    export_issue_progress(lambda: issue_progress(store.engine) if scheduler.serving else iter(()))
    scheduler.periodic += [
        ("kabar:config-reload", timedelta(seconds=2), watcher.poll),
        ("kabar:webhooks", timedelta(seconds=5), deliver_webhooks),
    ]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, watcher.request)
    try:
        await scheduler.serve(stopped)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await webhooks.close()
