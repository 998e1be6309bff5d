"""The scheduler: jobs from the YAML, woken by APScheduler 3.11, decided by kabar's database.

APScheduler is only the alarm clock (an AsyncIOScheduler with a memory job store). Each
job is a short tick that reads the last fire time it handled from `schedule_state`, lists
the fire times due since then, applies `catch_up` (latest | all | skip) and `max_lateness`,
and creates digest issues by key. So a restart, a missed wake-up or a DST double fire
changes nothing: the database says what was done, and an issue key exists once.

Issue keys use the local period of the fire time: the local date for schedules that fire
at most once a day (the fall-back double fire of 02:30 Europe/Berlin is one date, so one
issue), the local minute for more frequent ones. An issue sent by hand before the
period's run is keyed `…:manual`, so it never takes the scheduled issue's key.

Every feed is rebuilt after an ingest that changed any of its sources' articles, whether
or not the feed has a schedule of its own.

Only one scheduler runs per database: it holds the lease "scheduler", renewed while it
lives. A second one waits for it (`kabar run`) or exits saying who holds it (`--once`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, delete, insert, select, update

from kabar.config import Config, CronSchedule, Digest, IntervalSchedule, format_duration
from kabar.ledger import OPEN_STATES, Ledger
from kabar.store import insert_ignore
from kabar.store.tables import job_runs, schedule_state

log = logging.getLogger(__name__)

Schedule = CronSchedule | IntervalSchedule
Clock = Callable[[], datetime]

ON_TIME = timedelta(minutes=5)  # catch_up: skip still makes a run this late
_EARLY = timedelta(seconds=1)  # event loop timers may wake a job a hair before its time
_MAX_RUNS = 1000  # fire times listed per tick: a long outage of a 1-minute job is not a list
_ANCHOR = datetime(2000, 1, 3)  # a Monday: intervals count from local midnight of it
LEASE_NAME = "scheduler"


# --- timing --------------------------------------------------------------------------------


def zone_of(config: Config, schedule: Schedule | None) -> ZoneInfo:
    name = schedule.timezone if isinstance(schedule, CronSchedule) else None
    return ZoneInfo(name or config.site.timezone)


def trigger_for(schedule: Schedule, zone: ZoneInfo) -> BaseTrigger:
    if isinstance(schedule, CronSchedule):
        return CronTrigger.from_crontab(schedule.cron, timezone=zone)
    return IntervalTrigger(
        seconds=schedule.every.total_seconds(),
        start_date=_ANCHOR.replace(tzinfo=zone),
        timezone=zone,
    )


def fire_times(trigger: BaseTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Fire times in (after, until], the last _MAX_RUNS of them."""
    return counted_fire_times(trigger, after, until)[0]


def counted_fire_times(
    trigger: BaseTrigger, after: datetime, until: datetime
) -> tuple[list[datetime], int, datetime | None]:
    """The last _MAX_RUNS fire times in (after, until], and the first and count of all."""
    times: deque[datetime] = deque(maxlen=_MAX_RUNS)
    count = 0
    first = moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and moment <= until:
        times.append(moment)
        count += 1
        moment = trigger.get_next_fire_time(moment, moment)
    return list(times), count, first


def latest_fire(trigger: BaseTrigger, until: datetime) -> datetime | None:
    """The last fire time at or before `until` (looking back up to a year)."""
    for days in (2, 8, 32, 367):
        times = fire_times(trigger, until - timedelta(days=days), until)
        if times:
            return times[-1]
    return None


def _daily_or_coarser(schedule: Schedule | None, zone: ZoneInfo) -> bool:
    if schedule is None:
        return True
    if isinstance(schedule, IntervalSchedule):
        return schedule.every >= timedelta(days=1)
    start = _ANCHOR.replace(tzinfo=zone)
    seen: dict[str, tuple[int, int]] = {}
    for moment in fire_times(trigger_for(schedule, zone), start, start + timedelta(days=8)):
        local = moment.astimezone(zone)
        wall = (local.hour, local.minute)
        if seen.setdefault(local.date().isoformat(), wall) != wall:
            return False
    return True


def period_of(schedule: Schedule | None, zone: ZoneInfo, moment: datetime) -> str:
    """The local period an issue at `moment` belongs to: a date, or a date and minute."""
    local = moment.astimezone(zone)
    if _daily_or_coarser(schedule, zone):
        return local.date().isoformat()
    return local.strftime("%Y-%m-%dT%H:%M")


def issue_key(digest: Digest, period: str) -> str:
    return f"{digest.id}:{digest.list_id}:{period}"


def manual_issue_key(digest: Digest, period: str) -> str:
    """The key of an issue sent by hand before its period's scheduled run, which then
    still goes out under the plain key."""
    return f"{issue_key(digest, period)}:manual"


def slot_ahead(schedule: Schedule | None, zone: ZoneInfo, now: datetime) -> bool:
    """Whether the period of `now` still has a scheduled run to come."""
    if schedule is None:
        return False
    upcoming = trigger_for(schedule, zone).get_next_fire_time(None, now + timedelta(microseconds=1))
    return upcoming is not None and (
        period_of(schedule, zone, upcoming) == period_of(schedule, zone, now)
    )


@dataclass(frozen=True)
class Decision:
    """What a tick does with the due fire times."""

    run: list[datetime] = field(default_factory=list)
    late: list[datetime] = field(default_factory=list)  # past max_lateness: reported, not run
    superseded: list[datetime] = field(default_factory=list)  # dropped by catch_up


def decide(schedule: Schedule, due: list[datetime], now: datetime) -> Decision:
    if not due:
        return Decision()
    if isinstance(schedule, IntervalSchedule):
        return Decision(run=due[-1:], superseded=due[:-1])
    if schedule.catch_up == "all":
        chosen = due
    elif schedule.catch_up == "latest":
        chosen = due[-1:]
    else:
        chosen = [moment for moment in due if now - moment <= ON_TIME]
    late = [moment for moment in chosen if now - moment > schedule.max_lateness]
    return Decision(
        run=[moment for moment in chosen if moment not in late],
        late=late,
        superseded=[moment for moment in due if moment not in chosen],
    )


# --- jobs --------------------------------------------------------------------------------------

JobKind = Literal["ingest", "feed", "digest"]


@dataclass(frozen=True)
class Job:
    id: str  # "digest:harian", "feed:semua", "ingest:seeds"
    kind: JobKind
    target: str
    schedule: Schedule
    zone: ZoneInfo

    @property
    def trigger(self) -> BaseTrigger:
        return trigger_for(self.schedule, self.zone)


def jobs_from_config(config: Config) -> list[Job]:
    jobs = [
        Job(f"ingest:{source.id}", "ingest", source.id, IntervalSchedule(every=source.every),
            zone_of(config, None))
        for source in config.sources
        if source.every is not None
    ]  # fmt: skip
    jobs += [
        Job(f"feed:{feed.id}", "feed", feed.id, feed.schedule, zone_of(config, feed.schedule))
        for feed in config.feeds
        if feed.schedule is not None
    ]
    jobs += [
        Job(f"digest:{digest.id}", "digest", digest.id, digest.schedule,
            zone_of(config, digest.schedule))
        for digest in config.digests
        if digest.schedule is not None
    ]  # fmt: skip
    return jobs


def feeds_fed_by(config: Config, source_id: str) -> list[str]:
    """The feeds that show a source's articles: rebuilt whenever its ingest changed any."""
    return [feed.id for feed in config.feeds if feed.sources is None or source_id in feed.sources]


def idle_parts(config: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Sources, feeds and digests that no job of `kabar run` will ever run, each with its
    place in the config and why: only a manual command would touch them."""
    ingested = {source.id for source in config.sources if source.every is not None}
    for index, source in enumerate(config.sources):
        if source.every is None:
            yield (
                ("sources", index, "id"),
                (
                    f"no job ingests source {source.id!r}: give it `every:` for kabar run "
                    "(only kabar ingest and publish read it)"
                ),
            )
    for index, feed in enumerate(config.feeds):
        fed = ingested if feed.sources is None else ingested & set(feed.sources)
        if feed.schedule is None and not fed:
            yield (
                ("feeds", index, "id"),
                (
                    f"no job builds feed {feed.id!r}: none of its sources has `every:` "
                    "and it has no `schedule:`"
                ),
            )
    for index, digest in enumerate(config.digests):
        if digest.schedule is None:
            yield (
                ("digests", index, "id"),
                (
                    f"no job sends digest {digest.id!r}: it has no `schedule:` "
                    "(only kabar send --now and publish send it)"
                ),
            )


class Runners(Protocol):
    """What the jobs do; the CLI wires the real ones."""

    async def ingest(self, source_id: str) -> bool:
        """Read the source; True if any article was added or changed."""

    async def build_feed(self, feed_id: str) -> None: ...

    def start_issue(self, key: str) -> None:
        """Begin (or resume) delivering an issue, without waiting for it."""


# A hook run every so often while the scheduler holds its lease: (job id, interval, action).
Periodic = tuple[str, timedelta, Callable[[], Awaitable[None]]]


@dataclass
class TickReport:
    job: str
    ran: list[datetime] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    late: list[datetime] = field(default_factory=list)
    superseded: list[datetime] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        runners: Runners,
        *,
        owner: str,
        clock: Clock,
        lease_ttl: timedelta = timedelta(seconds=60),
        periodic: Sequence[Periodic] = (),
    ) -> None:
        # Fixed-interval hooks while serving: the bounce mailbox poll, webhooks, reloads.
        self.periodic = list(periodic)
        self.config = config
        self.engine = engine
        self.ledger = Ledger(engine)
        self.runners = runners
        self.owner = owner
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.jobs = jobs_from_config(config)
        self._alarm: Any = None  # the AsyncIOScheduler while serving

    # --- the tick --------------------------------------------------------------------------

    async def tick(self, job: Job) -> TickReport:
        now = self.clock()
        horizon = now + _EARLY
        last = self.last_fired(job.id)
        if last is None:  # first run: nothing before now was kabar's to do, but the latest
            latest = latest_fire(job.trigger, horizon)
            due = [latest] if latest else []
            unlisted, first = 0, latest
        else:
            due, total, first = counted_fire_times(job.trigger, last, horizon)
            unlisted = total - len(due)  # an outage longer than _MAX_RUNS runs
        decision = decide(job.schedule, due, now)
        report = TickReport(
            job.id, ran=decision.run, late=decision.late, superseded=decision.superseded
        )
        if decision.superseded:  # after downtime: one line per job, not one per run
            log.info(
                "%s: %d runs from %s to %s skipped (catch_up: %s)",
                job.id, len(decision.superseded) + unlisted,
                _local(first if unlisted and first else decision.superseded[0], job),
                _local(decision.superseded[-1], job),
                _policy(job),
            )  # fmt: skip
        if job.kind == "digest":
            self._plan_digest(job, decision, now, report)
        elif decision.run and job.kind == "ingest":
            if await self.runners.ingest(job.target):
                for feed_id in feeds_fed_by(self.config, job.target):  # scheduled or not
                    await self.runners.build_feed(feed_id)
        elif decision.run and job.kind == "feed":
            await self.runners.build_feed(job.target)
        if len(decision.late) == 1:
            [moment] = decision.late
            log.warning(
                "%s: the run of %s is %s late, past max_lateness %s: not sent",
                job.id, _local(moment, job), _rounded(now - moment), _max_lateness(job),
            )  # fmt: skip
        elif decision.late:
            log.warning(
                "%s: %d runs from %s to %s are past max_lateness %s: not sent",
                job.id, len(decision.late), _local(decision.late[0], job),
                _local(decision.late[-1], job), _max_lateness(job),
            )  # fmt: skip
        if due:
            self.set_last_fired(job.id, due[-1], now)
        return report

    def _plan_digest(self, job: Job, decision: Decision, now: datetime, report: TickReport) -> None:
        digest = self.config.digest(job.target)
        for moment in decision.run:
            key = issue_key(digest, period_of(job.schedule, job.zone, moment))
            made = self.ledger.create_issue(
                key, digest_id=digest.id, list_id=digest.list_id,
                period=period_of(job.schedule, job.zone, moment), issue_time=moment, now=now,
            )  # fmt: skip
            log.info("%s: %s %s", job.id, "created issue" if made else "issue exists:", key)
            report.issues.append(key)
            self.runners.start_issue(key)
        for moment in decision.late:
            period = period_of(job.schedule, job.zone, moment)
            self.ledger.create_issue(
                issue_key(digest, period), digest_id=digest.id, list_id=digest.list_id,
                period=period, issue_time=moment, now=now, state="missed",
                detail=f"{_rounded(now - moment)} late, past max_lateness {_max_lateness(job)}",
            )  # fmt: skip

    def resume_open_issues(self) -> list[str]:
        """Hand every unfinished issue (a crash, a restart, retries due) to the runner."""
        keys = [issue.key for issue in self.ledger.issues(states=OPEN_STATES)]
        for key in keys:
            self.runners.start_issue(key)
        return keys

    async def run_due(self) -> list[TickReport]:
        """Every job once (kabar run --once, and at daemon start)."""
        reports = [await self.run_job(job) for job in self.jobs]
        self.resume_open_issues()
        return reports

    async def run_job(self, job: Job) -> TickReport:
        """A tick, with its lag and outcome kept for metrics and `kabar jobs`."""
        from kabar.observe.metrics import JOB_RUNS, SCHEDULER_LAG

        started = self.clock()
        outcome, detail = "ok", ""
        report = TickReport(job.id)
        try:
            report = await self.tick(job)
        except Exception as exc:
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("%s: the run failed", job.id)
        lag = (started - report.ran[-1]).total_seconds() if report.ran else 0.0
        if report.ran:
            SCHEDULER_LAG.labels(job.id).set(max(lag, 0.0))
        JOB_RUNS.labels(job.id, outcome).inc()
        if report.ran or outcome == "failed":
            record_job_run(self.engine, job.id, started, self.clock(), lag, outcome, detail)
        return report

    # --- schedule state ----------------------------------------------------------------------

    def last_fired(self, job_id: str) -> datetime | None:
        with self.engine.connect() as connection:
            value: datetime | None = connection.execute(
                select(schedule_state.c.last_fired).where(schedule_state.c.job_id == job_id)
            ).scalar()
        return value

    def set_last_fired(self, job_id: str, moment: datetime, now: datetime) -> None:
        with self.engine.begin() as connection:
            values = {"job_id": job_id, "last_fired": moment, "updated": now}
            if not insert_ignore(connection, schedule_state, values):
                connection.execute(
                    update(schedule_state)
                    .where(schedule_state.c.job_id == job_id, schedule_state.c.last_fired < moment)
                    .values(last_fired=moment, updated=now)
                )

    # --- one scheduler per database --------------------------------------------------------

    def acquire(self) -> bool:
        return self.ledger.acquire_lease(
            LEASE_NAME, self.owner, ttl=self.lease_ttl, now=self.clock()
        )

    def holder(self) -> str:
        found = self.ledger.lease_holder(LEASE_NAME)
        if found is None:
            return "nobody"
        owner, expires = found
        return f"{owner} (lease until {expires.isoformat(timespec='seconds')})"

    def release(self) -> None:
        self.ledger.release_lease(LEASE_NAME, self.owner)

    # --- the daemon ------------------------------------------------------------------------

    async def serve(
        self, stop: asyncio.Event, *, sweep_every: timedelta = timedelta(seconds=30)
    ) -> None:
        """Run until `stop` is set: wait for the lease, tick what is due, then let
        APScheduler wake each job at its fire times."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        await self._wait_for_lease(stop)
        if stop.is_set():
            return
        await self.run_due()
        scheduler = self._alarm = AsyncIOScheduler(timezone=UTC)
        for job in self.jobs:
            self._add_alarm(job)
        for name, every, action in self.periodic:
            scheduler.add_job(
                action, IntervalTrigger(seconds=every.total_seconds()), id=name, name=name,
                max_instances=1, coalesce=True,
            )  # fmt: skip
        keep_every = min(sweep_every.total_seconds(), self.lease_ttl.total_seconds() / 3)
        scheduler.add_job(
            self._keep, IntervalTrigger(seconds=keep_every), args=[stop],
            id="kabar:lease-and-sweep", max_instances=1, coalesce=True,
        )  # fmt: skip
        scheduler.start()
        log.info(
            "scheduler: %d jobs: %s", len(self.jobs), ", ".join(j.id for j in self.jobs) or "none"
        )
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            self._alarm = None
            self.release()

    @property
    def serving(self) -> bool:
        """Whether this scheduler holds the lease and runs its jobs."""
        return self._alarm is not None

    def _add_alarm(self, job: Job) -> None:
        assert self._alarm is not None
        self._alarm.add_job(
            self.run_job, job.trigger, args=[job], id=job.id, name=job.id,
            misfire_grace_time=None, coalesce=True, max_instances=1, replace_existing=True,
        )  # fmt: skip

    def reload(self, config: Config) -> list[str]:
        """Take a new (already validated) config: jobs added, removed and rescheduled, each
        logged. A run in progress finishes under the config it began with."""
        old = {job.id: job for job in self.jobs}
        new = {job.id: job for job in jobs_from_config(config)}
        changes = []
        for job_id in old.keys() - new.keys():
            changes.append(f"removed {job_id}")
            if self._alarm is not None:
                self._alarm.remove_job(job_id)
        for job_id, job in new.items():
            before = old.get(job_id)
            if before is not None and (before.schedule, before.zone) == (job.schedule, job.zone):
                continue
            changes.append(f"{'rescheduled' if before else 'added'} {job_id}: {describe(job)}")
            if self._alarm is not None:
                self._add_alarm(job)
        self.config = config
        self.jobs = list(new.values())
        for change in sorted(changes):
            log.info("scheduler: %s", change)
        return sorted(changes)

    async def _keep(self, stop: asyncio.Event) -> None:
        """Renew the lease and resume unfinished issues (retries that came due)."""
        if not self.acquire():
            log.error("scheduler: lost the lease to %s; stopping", self.holder())
            stop.set()
            return
        self.resume_open_issues()

    async def _wait_for_lease(self, stop: asyncio.Event) -> None:
        told = False
        while not stop.is_set() and not self.acquire():
            if not told:
                log.warning(
                    "scheduler: another scheduler runs on this database: %s; waiting", self.holder()
                )
                told = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.lease_ttl.total_seconds() / 3)


def _local(moment: datetime, job: Job) -> str:
    return moment.astimezone(job.zone).strftime("%Y-%m-%d %H:%M %Z")


def _policy(job: Job) -> str:
    return job.schedule.catch_up if isinstance(job.schedule, CronSchedule) else "latest"


def _max_lateness(job: Job) -> str:
    schedule = job.schedule
    return _rounded(schedule.max_lateness) if isinstance(schedule, CronSchedule) else "-"


def _rounded(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def describe(job: Job) -> str:
    """The job's schedule as the config says it: `cron 0 7 * * * Asia/Jakarta`, `every 15m`."""
    if isinstance(job.schedule, CronSchedule):
        return f"cron {job.schedule.cron} {job.zone.key}"
    return f"every {format_duration(job.schedule.every)}"


def next_runs(job: Job, after: datetime, count: int = 3) -> list[datetime]:
    times: list[datetime] = []
    moment: datetime | None = after
    while moment is not None and len(times) < count:
        moment = job.trigger.get_next_fire_time(times[-1] if times else None,
                                                moment + timedelta(microseconds=1))  # fmt: skip
        if moment is not None:
            times.append(moment)
    return times


@dataclass(frozen=True)
class JobRun:
    job_id: str
    started: datetime
    finished: datetime
    lag_seconds: int
    outcome: str
    detail: str


def record_job_run(
    engine: Engine, job_id: str, started: datetime, finished: datetime, lag: float,
    outcome: str, detail: str,
) -> None:  # fmt: skip
    values = {
        "job_id": job_id, "started": started, "finished": finished,
        "lag_seconds": max(int(lag), 0), "outcome": outcome, "detail": detail[:2000],
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(delete(job_runs).where(job_runs.c.job_id == job_id))
        connection.execute(insert(job_runs).values(values))


def last_runs(engine: Engine) -> dict[str, JobRun]:
    with engine.connect() as connection:
        return {row.job_id: JobRun(**row._mapping) for row in connection.execute(select(job_runs))}
