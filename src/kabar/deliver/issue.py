"""An issue from key to last delivery: plan → render → materialise → send → finish.

Each step is a compare-and-set in the ledger, so any number of restarts (or a second
process) pick the issue up where it stands: a rendered issue is sent from its stored
rendering (`load_prepared`), never rendered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kabar.config import Config, CronSchedule, Digest
from kabar.deliver.send import (
    Clock,
    Dispatcher,
    LocalDispatcher,
    Progress,
    Sender,
    crash_point,
    in_thread,
    utcnow,
)
from kabar.deliver.transport import Transport
from kabar.digest import PreparedIssue, load_prepared, prepare_issue
from kabar.ledger import Issue, Ledger
from kabar.model import Recipient
from kabar.render.view import IssueView
from kabar.schedule import (
    issue_key,
    latest_fire,
    manual_issue_key,
    period_of,
    slot_ahead,
    trigger_for,
    zone_of,
)
from kabar.select import window_start
from kabar.store import Store
from kabar.subscribers import Subscribers

log = logging.getLogger(__name__)

_POLL = 5.0  # seconds between looks at the ledger while others hold claims or retries wait


# Called once an issue is sent (or partly sent) with its key and what it showed; the mail
# is out whatever the hook does, so a hook logs its own failures.
SentHook = Callable[[str, IssueView], None]


class NothingDue(Exception):
    """No issue of this digest is due now; the message says why."""


@dataclass(frozen=True)
class Plan:
    digest: Digest
    key: str
    period: str
    issue_time: datetime


def plan_issue(
    config: Config, ledger: Ledger, digest: Digest, *, now: datetime, at_once: bool
) -> Plan:
    """The issue `kabar send` works on: the current period's (--now), or the latest
    scheduled run's, if it is within max_lateness or already exists. An issue made by
    hand before the period's scheduled run takes the period's manual key, so the
    scheduled issue still goes out (with what the manual one did not carry)."""
    zone = zone_of(config, digest.schedule)
    moment = now
    if not at_once:
        if digest.schedule is None:
            raise NothingDue(f"digest {digest.id} has no schedule; --now sends the current issue")
        found = latest_fire(trigger_for(digest.schedule, zone), now)
        if found is None:
            raise NothingDue(f"no run of digest {digest.id} is due yet")
        moment = found
    period = period_of(digest.schedule, zone, moment)
    key = issue_key(digest, period)
    existing = ledger.issue(key)
    if existing is None and at_once and slot_ahead(digest.schedule, zone, now):
        key = manual_issue_key(digest, period)
        existing = ledger.issue(key)
    if existing is not None:  # the period's issue: resume it as it was cut
        return Plan(digest, key, existing.period, existing.issue_time)
    schedule = digest.schedule
    if not at_once and isinstance(schedule, CronSchedule) and now - moment > schedule.max_lateness:
        raise NothingDue(
            f"the last run of {digest.id} ({moment.astimezone(zone):%Y-%m-%d %H:%M %Z}) is past "
            "max_lateness, so none is due; --now sends the current issue"
        )
    return Plan(digest, key, period, moment)


def carried_before(
    ledger: Ledger, digest: Digest, key: str, issue_time: datetime, since: datetime | None
) -> frozenset[str]:
    """Articles that earlier issues of the digest to the same list carried inside this
    issue's window: left out, so no subscriber gets an article twice (unless the digest
    sets repeat_articles)."""
    if digest.repeat_articles:
        return frozenset()
    start = window_start(digest, issue_time=issue_time, since=since)
    return ledger.carried_articles(
        digest.id, digest.list_id, since=start, before=issue_time, other_than=key
    )


class IssueRunner:
    """Drives issues through their states and sends them with one Sender."""

    def __init__(
        self,
        config: Config,
        store: Store,
        transport: Transport,
        *,
        secret: bytes,
        clock: Clock = utcnow,
        progress: Progress | None = None,
        dispatcher: Dispatcher | None = None,
        finish_level: int = logging.INFO,
        on_sent: SentHook | None = None,
    ) -> None:
        self.config = config
        self.on_sent = on_sent
        self.finish_level = finish_level  # DEBUG when the command prints the outcome itself
        self.store = store
        self.ledger = Ledger(store.engine)
        self.transport = transport
        self.clock = clock
        self.sender = Sender(
            config, self.ledger, transport, secret=secret, clock=clock, progress=progress
        )
        self.dispatcher = dispatcher or LocalDispatcher(self.sender.deliver_chunk, transport)
        self._running: dict[str, asyncio.Task[Issue | None]] = {}
        self._stop = asyncio.Event()
        self.background_wait = True  # background runs wait out deferred retries

    # --- creating and reopening -------------------------------------------------------------

    def create(self, plan: Plan) -> tuple[Issue, bool]:
        made = self.ledger.create_issue(
            plan.key, digest_id=plan.digest.id, list_id=plan.digest.list_id, period=plan.period,
            issue_time=plan.issue_time, now=self.clock(),
        )  # fmt: skip
        issue = self.ledger.issue(plan.key)
        assert issue is not None
        return issue, made

    def reopen(
        self, key: str, *, resend_failed: bool = False, revive_missed: bool = False
    ) -> Issue | None:
        """Make a stopped issue sendable again: a paused one (the sender problem is fixed),
        failed deliveries with resend_failed, a missed run with revive_missed (send it
        late after all)."""
        now = self.clock()
        if resend_failed:
            count = self.ledger.reset_failed(key, now=now)
            log.info("%s: %d failed deliveries back to pending", key, count)
        if self.ledger.transition(key, "paused", "sending", now=now, detail=""):
            log.info("%s: resumed after a pause", key)
        if revive_missed:
            self.ledger.transition(key, "missed", "planned", now=now, detail="")
        return self.ledger.issue(key)

    # --- running ------------------------------------------------------------------------------

    async def run(self, key: str, *, wait: bool = True) -> Issue | None:
        """Take the issue as far as it goes: to a final state, to paused, or, with
        wait=False, until only deferred retries (or others' claims) are left."""
        while True:
            issue = await in_thread(self.ledger.issue, key)
            if issue is None or self._stop.is_set():
                return issue
            if issue.state == "planned":
                await self._render(issue)
            elif issue.state == "rendered":
                await in_thread(self._materialise, issue)
            elif issue.state == "materialised":
                if await in_thread(
                    self.ledger.transition, key, "materialised", "sending", now=self.clock()
                ):
                    log.info(
                        "%s: sending to %d subscribers by %s",
                        key,
                        issue.audience,
                        self.dispatcher.describe(),
                    )
            elif issue.state == "sending":
                if not await self._send_round(key, wait=wait):
                    return issue
            else:
                return issue

    async def _send_round(self, key: str, *, wait: bool) -> bool:
        """One pass over the chunks with due work; False when it is time to return."""
        chunks = await in_thread(self.ledger.chunks_with_work, key, now=self.clock())
        if chunks:
            await self.dispatcher.submit(key, chunks)
            if not await self.dispatcher.join():  # workers elsewhere have it
                if not wait:
                    return False
                await self._sleep(self.dispatcher.look_again_in(key, _POLL))
            return not self.sender.stopping
        final = await in_thread(self.ledger.finish, key, now=self.clock())
        if final is not None:
            counts = (await in_thread(self.ledger.counts, [key]))[key]
            log.log(
                self.finish_level, "%s: %s: %s",
                key, final, ", ".join(f"{n} {k}" for k, n in counts.to_dict().items()),
            )  # fmt: skip
            if final in ("sent", "partial"):
                await in_thread(self._report_sent, key)
            return True
        if not wait:
            return False
        wake = await in_thread(self.ledger.next_wakeup, key)
        longest = self.dispatcher.look_again_in(key, _POLL)  # workers hold the last claims
        delay = longest if wake is None else min(longest, (wake - self.clock()).total_seconds())
        await self._sleep(max(delay, 0.05))
        return True

    def _report_sent(self, key: str) -> None:
        """Tell `on_sent` (the web archive, in `kabar send` and `kabar run`) what went out."""
        issue = self.ledger.issue(key)
        if self.on_sent is None or issue is None or issue.prepared is None:
            return
        self.on_sent(key, load_prepared(self.config, issue.prepared).view)

    async def _render(self, issue: Issue) -> None:
        digest = next((d for d in self.config.digests if d.id == issue.digest_id), None)
        if digest is None:
            detail = f"digest {issue.digest_id} is no longer in the config"
            await in_thread(
                self.ledger.transition,
                issue.key,
                "planned",
                "failed",
                now=self.clock(),
                detail=detail,
            )
            return
        since = None
        if digest.window == "since_last":
            since = await in_thread(
                self.ledger.last_issue_time, digest.id, digest.list_id, issue.issue_time
            )
        carried = await in_thread(
            carried_before, self.ledger, digest, issue.key, issue.issue_time, since
        )
        choices = await in_thread(
            Subscribers(self.store.engine).choices, issue.list_id, issue.digest_id
        )
        prepared = await in_thread(
            prepare_issue, self.config, self.store, digest,
            issue_key=issue.key, issue_time=issue.issue_time, since=since, exclude=carried,
            choices=choices,
        )  # fmt: skip
        crash_point("mid_render")
        now = self.clock()
        if prepared is None:
            log.info("%s: skipped: no new articles for this issue", issue.key)
            await in_thread(
                self.ledger.transition,
                issue.key,
                "planned",
                "skipped",
                now=now,
                detail="no new articles",
            )
            return
        await in_thread(
            self.ledger.transition,
            issue.key,
            "planned",
            "rendered",
            now=now,
            prepared=prepared.dump(),
        )
        log.info(
            "%s: rendered %r, %d articles", issue.key, prepared.subject, len(prepared.article_ids)
        )

    def _materialise(self, issue: Issue) -> None:
        assert issue.prepared is not None
        prepared = load_prepared(self.config, issue.prepared)
        self.ledger.materialise(
            issue.key, issue.list_id, chunk_size=self.config.delivery.chunk_size,
            message_id=lambda sid: prepared.message_id_for(Recipient(sid, "")), now=self.clock(),
            digest_id=issue.digest_id, route=prepared.route,
        )  # fmt: skip

    # --- in the background (the scheduler) ----------------------------------------------------

    def start(self, key: str) -> None:
        """Run an issue in the background unless it already runs here."""
        task = self._running.get(key)
        if task is None or task.done():
            self._running[key] = asyncio.create_task(self._run_logged(key))

    async def _run_logged(self, key: str) -> Issue | None:
        try:
            return await self.run(key, wait=self.background_wait)
        except Exception:
            log.exception("%s: delivery stopped by an error; it resumes on the next sweep", key)
            return None

    async def drain(self) -> None:
        while self._running:
            key, task = next(iter(self._running.items()))
            await task
            if self._running.get(key) is task:
                del self._running[key]

    def stop(self) -> None:
        """SIGTERM: finish the sends in flight, hand back the rest, start nothing new."""
        self.sender.stop()
        self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def close(self) -> None:
        await self.sender.close()
        await self.dispatcher.close()
        await self.transport.close()


def dry_run(config: Config, store: Store, plan: Plan) -> dict[str, Any]:
    """What `kabar send --dry-run` shows: the issue as it would be, nothing written."""
    existing = Ledger(store.engine).issue(plan.key)
    prepared: PreparedIssue | None
    if existing is not None and existing.prepared is not None:
        prepared = load_prepared(config, existing.prepared)
    else:
        ledger = Ledger(store.engine)
        since = None
        if plan.digest.window == "since_last":
            since = ledger.last_issue_time(plan.digest.id, plan.digest.list_id, plan.issue_time)
        carried = carried_before(ledger, plan.digest, plan.key, plan.issue_time, since)
        prepared = prepare_issue(
            config, store, plan.digest, issue_key=plan.key, issue_time=plan.issue_time,
            since=since, exclude=carried,
            choices=Subscribers(store.engine).choices(plan.digest.list_id, plan.digest.id),
        )  # fmt: skip
    audience = Subscribers(store.engine).counts(plan.digest.list_id)["active"]
    return {
        "issue": plan.key,
        "state": existing.state if existing else "(new)",
        "issue_time": plan.issue_time.isoformat(),
        "subject": prepared.subject if prepared else None,
        "articles": len(prepared.article_ids) if prepared else 0,
        "audience": existing.audience if existing and existing.audience else audience,
        "transport": config.delivery.transport,
        "skip": prepared is None,
    }
