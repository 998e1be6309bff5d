"""The issue state machine and the delivery ledger, the source of truth of sending.

Issues (one per key "{digest}:{list}:{local period}", created with INSERT … ON CONFLICT DO
NOTHING) move by compare-and-set:

    planned → rendered → materialised → sending → sent | partial | failed
    planned → skipped (nothing new)     sending ⇄ paused (a sender problem; an admin resumes)
    planned → missed (past max_lateness; `kabar send --resume` can still send it)

A delivery row per (issue, subscriber) moves

    pending → claimed (a lease) → sent | retry_wait | failed | bounced | skipped
    sent → bounced | complained (what comes back later: kabar.inbound)

A sender commits its claim before talking SMTP and the result after the reply, and only
under the claim it holds: a sender whose lease ran out cannot overwrite the new holder's
result. A claim whose lease expired is claimable again, and is re-sent under the same
Message-ID. Claims select with FOR UPDATE SKIP LOCKED on PostgreSQL, so senders on several
machines never wait on each other's rows; on SQLite the single-statement UPDATE is atomic.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from kabar.store import insert_ignore
from kabar.store.tables import UTCDateTime, deliveries, issues, leases, subscribers
from kabar.subscribers import parse_choice, receives
from kabar.suppression import suppressed_clause

IssueState = Literal[
    "planned", "rendered", "materialised", "sending", "sent", "partial", "failed", "paused",
    "skipped", "missed", "cancelled",
]  # fmt: skip
OPEN_STATES: tuple[IssueState, ...] = ("planned", "rendered", "materialised", "sending")
# An issue in one of these states has gone (or is going) out with its rendered articles.
CARRYING_STATES: tuple[IssueState, ...] = (
    "rendered", "materialised", "sending", "sent", "partial", "paused",
)  # fmt: skip
DeliveryState = Literal[
    "pending", "claimed", "sent", "retry_wait", "failed", "bounced", "skipped", "complained"
]


@dataclass(frozen=True)
class Issue:
    key: str
    digest_id: str
    list_id: str
    period: str
    issue_time: datetime
    state: IssueState
    detail: str
    prepared: dict[str, Any] | None
    audience: int
    chunks: int
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds, with what it needs to address the message."""

    delivery_id: int
    claim: str
    subscriber_id: str
    email: str
    name: str
    locale: str
    status: str  # the subscriber's status now: only "active" is sent to
    message_id: str
    attempts: int
    variant: str = ""  # the issue variant it gets (Ledger.materialise's `route`)


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, recorded under the claim that made it."""

    delivery_id: int
    claim: str
    state: DeliveryState  # "pending" hands the row back untried (a paused issue)
    code: int | None = None  # the SMTP reply code; 0 when none came (timeout, disconnect)
    reply: str = ""
    next_attempt: datetime | None = None
    subscriber_id: str = ""
    counts_attempt: bool = True


@dataclass(frozen=True)
class Counts:
    audience: int = 0
    sent: int = 0
    deferred: int = 0  # retry_wait
    failed: int = 0
    bounced: int = 0
    skipped: int = 0  # the subscriber left after the audience was taken
    complained: int = 0  # sent, then reported as spam (kabar.inbound)
    pending: int = 0  # pending or claimed
    claimed: int = 0

    @property
    def unfinished(self) -> int:
        return self.pending + self.deferred

    def to_dict(self) -> dict[str, int]:
        return {
            "audience": self.audience, "sent": self.sent, "deferred": self.deferred,
            "failed": self.failed, "bounced": self.bounced, "complained": self.complained,
            "skipped": self.skipped, "pending": self.pending,
        }  # fmt: skip


def new_token() -> str:
    return secrets.token_hex(12)


def _claimable(now: Any) -> ColumnElement[bool]:
    d = deliveries.c
    return or_(
        d.state == "pending",
        and_(d.state == "retry_wait", d.next_attempt <= now),
        and_(d.state == "claimed", d.lease_until < now),
    )


def _claimed_columns(d: Any, s: Any) -> tuple[Any, ...]:
    """What a claim reads, in Claimed's order after the claim token."""
    return (d.id, d.subscriber_id, s.email, s.name, s.locale, s.status, d.message_id,
            d.attempts, d.variant)  # fmt: skip


def _claimed(token: str, row: Any) -> Claimed:
    return Claimed(
        delivery_id=row[0], claim=token, subscriber_id=row[1], email=row[2], name=row[3],
        locale=row[4], status=row[5], message_id=row[6], attempts=row[7], variant=row[8] or "",
    )  # fmt: skip


# The statements of the sending loop, built once: building one costs more than running it.
def _claim_statements() -> tuple[Any, Any]:
    d, s = deliveries.c, subscribers.c
    now = bindparam("c_now", type_=UTCDateTime)
    candidates = (
        select(d.id)
        .where(d.issue_key == bindparam("c_key"), d.chunk == bindparam("c_chunk"), _claimable(now))
        .limit(bindparam("c_limit"))
        .with_for_update(skip_locked=True)  # PostgreSQL: never wait on another claimer
    )
    take = (
        update(deliveries)
        .where(d.id.in_(candidates.scalar_subquery()), _claimable(now))
        .values(
            state="claimed",
            claim=bindparam("c_token"),
            owner=bindparam("c_owner"),
            lease_until=bindparam("c_lease_until", type_=UTCDateTime),
        )
    )
    read = (
        select(*_claimed_columns(d, s))
        .join(subscribers, s.id == d.subscriber_id)
        .where(d.claim == bindparam("c_token"))
    )
    return take, read


_CLAIM, _CLAIMED = _claim_statements()
_RECORD = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("d_id"), deliveries.c.claim == bindparam("d_claim"))
    .values(
        state=bindparam("d_state"),
        attempts=deliveries.c.attempts + bindparam("d_attempt"),
        code=func.coalesce(bindparam("d_code"), deliveries.c.code),
        reply=func.coalesce(bindparam("d_reply"), deliveries.c.reply),
        codes=func.trim(deliveries.c.codes + " " + bindparam("d_code_text")),
        next_attempt=bindparam("d_next", type_=UTCDateTime),
        sent=bindparam("d_sent", type_=UTCDateTime),
        claim=None,
        owner=None,
        lease_until=None,
    )
)
_BOUNCE = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("b_id"), subscribers.c.status == "active")
    .values(status="bounced", updated=bindparam("b_now", type_=UTCDateTime))
)


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled once for one database, for the driver's own cursor
    (`ResultWriter`): what SQLAlchemy does per execution (finding the compiled form,
    processing each row's parameters) was about a fifth of each commit."""

    sql: str
    order: tuple[str, ...] | None  # the parameters' order, where the driver's are positional
    bound: dict[str, Any]  # the values the statement binds itself (claim=None, " ")
    processors: dict[str, Callable[[Any], Any]]  # by parameter: the column type's conversion

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        processors: dict[str, Callable[[Any], Any]] = {
            name: processor
            for bind, name in compiled.bind_names.items()
            if (processor := bind.type.bind_processor(dialect)) is not None
        }
        order = tuple(compiled.positiontup) if compiled.positiontup else None
        return cls(compiled.string, order, dict(compiled.params), processors)

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        converted = []
        for row in rows:
            values = {**self.bound, **row}
            for name, processor in self.processors.items():
                values[name] = processor(values[name])
            converted.append(values if self.order is None else tuple(map(values.get, self.order)))
        return converted


class Ledger:
    """Issues and deliveries in kabar's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @cached_property
    def _result_statements(self) -> tuple[_DriverStatement, _DriverStatement]:
        record = _DriverStatement.compile(_RECORD, self.engine.dialect)
        bounce = _DriverStatement.compile(_BOUNCE, self.engine.dialect)
        return record, bounce

    # --- issues --------------------------------------------------------------------------

    def create_issue(
        self,
        key: str,
        *,
        digest_id: str,
        list_id: str,
        period: str,
        issue_time: datetime,
        now: datetime,
        state: IssueState = "planned",
        detail: str = "",
    ) -> bool:
        """Create the issue unless one with this key exists; True if this call made it."""
        values = {
            "key": key, "digest_id": digest_id, "list_id": list_id, "period": period,
            "issue_time": issue_time, "state": state, "detail": detail, "prepared": None,
            "audience": 0, "chunks": 0, "created": now, "updated": now,
        }  # fmt: skip
        with self.engine.begin() as connection:
            return insert_ignore(connection, issues, values)

    def issue(self, key: str) -> Issue | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(issues).where(issues.c.key == key)).first()
        return Issue(**row._mapping) if row else None

    def issues(
        self,
        *,
        states: Sequence[str] | None = None,
        digest_id: str | None = None,
        limit: int | None = None,
    ) -> list[Issue]:
        query = select(issues).order_by(issues.c.issue_time.desc(), issues.c.key)
        if states is not None:
            query = query.where(issues.c.state.in_(list(states)))
        if digest_id is not None:
            query = query.where(issues.c.digest_id == digest_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [Issue(**row._mapping) for row in connection.execute(query)]

    def transition(
        self,
        key: str,
        expected: IssueState | Sequence[IssueState],
        new: IssueState,
        *,
        now: datetime,
        **values: Any,
    ) -> bool:
        """Compare-and-set: move the issue to `new` only from an expected state."""
        allowed = [expected] if isinstance(expected, str) else list(expected)
        statement = (
            update(issues)
            .where(issues.c.key == key, issues.c.state.in_(allowed))
            .values(state=new, updated=now, **values)
        )
        with self.engine.begin() as connection:
            changed = bool(connection.execute(statement).rowcount)
            if changed:
                _tell_issue(connection, key, allowed, new, now)
            return changed

    def last_issue_time(self, digest_id: str, list_id: str, before: datetime) -> datetime | None:
        """When the last issue that went out (or is going out) was cut, for since_last."""
        query = select(func.max(issues.c.issue_time)).where(
            issues.c.digest_id == digest_id,
            issues.c.list_id == list_id,
            issues.c.issue_time < before,
            issues.c.state.in_(["sending", "sent", "partial", "paused"]),
        )
        with self.engine.connect() as connection:
            value: datetime | None = connection.execute(query).scalar()
        return value

    def carried_articles(
        self, digest_id: str, list_id: str, *, since: datetime, before: datetime, other_than: str
    ) -> frozenset[str]:
        """Ids of the articles rendered into issues of this digest and list cut in
        [since, before), apart from `other_than`; issues that never went out (skipped,
        missed, failed) carried nothing."""
        query = select(issues.c.prepared).where(
            issues.c.digest_id == digest_id,
            issues.c.list_id == list_id,
            issues.c.issue_time >= since,
            issues.c.issue_time < before,
            issues.c.key != other_than,
            issues.c.state.in_(CARRYING_STATES),
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).scalars().all()
        return frozenset(
            article for prepared in rows if prepared for article in prepared["article_ids"]
        )

    def materialise(
        self,
        key: str,
        list_id: str,
        *,
        chunk_size: int,
        message_id: Callable[[str], str],
        now: datetime,
        digest_id: str | None = None,
        route: Callable[[str, tuple[str, ...]], tuple[str, bool]] | None = None,
    ) -> bool:
        """Take the audience snapshot: one pending delivery per active subscriber (who
        receives `digest_id`, when given), split in chunks, in one transaction with the
        rendered → materialised step. `route` names each subscriber's variant from their
        (locale, sections), and whether it has articles: one whose sections have none
        today is recorded as skipped, so the counts still add up to the audience.
        Subscribers who join later wait for the next issue. False if another sender did
        it first."""
        s = subscribers.c
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(issues)
                .where(issues.c.key == key, issues.c.state == "rendered")
                .values(state="materialised", updated=now)
            ).rowcount
            if not claimed:
                return False
            audience_filter = [
                s.list_id == list_id,
                s.status == "active",
                ~suppressed_clause(s.email_key),  # never a suppressed address
            ]
            if digest_id is not None:
                audience_filter.append(receives(digest_id))
            chunk, audience, last_id = 0, 0, ""
            while True:
                found = connection.execute(
                    select(s.id, s.locale, s.sections)
                    .where(*audience_filter, s.id > last_id)
                    .order_by(s.id)
                    .limit(chunk_size)
                ).all()
                if not found:
                    break
                rows = []
                for sid, locale, sections in found:
                    row = _pending_row(key, chunk, sid, message_id(sid))
                    if route is not None:
                        row["variant"], has_articles = route(locale or "", parse_choice(sections))
                        if not has_articles:
                            row["state"] = "skipped"
                            row["reply"] = "nothing in the subscriber's sections"
                    rows.append(row)
                connection.execute(deliveries.insert(), rows)
                audience += len(rows)
                chunk += 1
                last_id = found[-1][0]
            connection.execute(
                update(issues).where(issues.c.key == key).values(audience=audience, chunks=chunk)
            )
        return True

    def variants(self, key: str) -> dict[str, int]:
        """How many of the issue's deliveries each variant had ("" before variants)."""
        query = (
            select(deliveries.c.variant, func.count())
            .where(deliveries.c.issue_key == key)
            .group_by(deliveries.c.variant)
        )
        with self.engine.connect() as connection:
            return {str(variant or ""): int(n) for variant, n in connection.execute(query)}

    # --- claims ----------------------------------------------------------------------------

    def claim(
        self,
        key: str,
        chunk: int,
        *,
        owner: str,
        limit: int,
        lease: timedelta,
        now: datetime,
    ) -> list[Claimed]:
        """Claim up to `limit` due deliveries of one chunk, committed before any send."""
        token = new_token()
        values = {
            "c_key": key, "c_chunk": chunk, "c_limit": limit, "c_now": now, "c_token": token,
            "c_owner": owner, "c_lease_until": now + lease,
        }  # fmt: skip
        with self.engine.begin() as connection:
            if not connection.execute(_CLAIM, values).rowcount:
                return []
            rows = connection.execute(_CLAIMED, {"c_token": token})
            return [_claimed(token, row) for row in rows]

    def renew(self, claims: Iterable[str], *, lease_until: datetime) -> None:
        """Extend the leases of claims still held (a live sender's heartbeat)."""
        tokens = list(claims)
        if not tokens:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(deliveries)
                .where(deliveries.c.claim.in_(tokens), deliveries.c.state == "claimed")
                .values(lease_until=lease_until)
            )

    def release(self, claimed: Iterable[Claimed]) -> int:
        """Hand back claimed deliveries that were never tried (on stop or pause)."""
        rows = [{"d_id": c.delivery_id, "d_claim": c.claim} for c in claimed]
        if not rows:
            return 0
        d = deliveries.c
        statement = (
            update(deliveries)
            .where(d.id == bindparam("d_id"), d.claim == bindparam("d_claim"), d.state == "claimed")
            .values(state="pending", claim=None, owner=None, lease_until=None)
        )
        with self.engine.begin() as connection:
            return int(connection.execute(statement, rows).rowcount)

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> int:
        """Commit results, each only if its claim still holds; bounced subscribers are
        marked in the same transaction. Returns how many rows were written. The sending
        loop holds a `ResultWriter` instead, which keeps its connection."""
        with self.result_writer() as writer:
            return writer.record(outcomes, now=now)

    def result_writer(self) -> ResultWriter:
        return ResultWriter(self.engine, *self._result_statements)

    def reset_failed(self, key: str, *, now: datetime) -> int:
        """Put failed deliveries back to pending (same Message-IDs) and reopen the issue.
        Bounced addresses stay bounced."""
        d = deliveries.c
        with self.engine.begin() as connection:
            count = int(
                connection.execute(
                    update(deliveries)
                    .where(d.issue_key == key, d.state == "failed")
                    .values(state="pending", attempts=0, next_attempt=None)
                ).rowcount
            )
            if count:
                connection.execute(
                    update(issues)
                    .where(issues.c.key == key, issues.c.state.in_(["partial", "failed"]))
                    .values(state="sending", detail="", updated=now)
                )
        return count

    # --- progress ----------------------------------------------------------------------------

    def chunks_with_work(self, key: str, *, now: datetime) -> list[int]:
        query = (
            select(deliveries.c.chunk)
            .where(deliveries.c.issue_key == key, _claimable(now))
            .distinct()
            .order_by(deliveries.c.chunk)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def next_wakeup(self, key: str) -> datetime | None:
        """The earliest time a deferred delivery or someone else's claim becomes due."""
        d = deliveries.c
        with self.engine.connect() as connection:
            retry = connection.execute(
                select(func.min(d.next_attempt)).where(d.issue_key == key, d.state == "retry_wait")
            ).scalar()
            lease = connection.execute(
                select(func.min(d.lease_until)).where(d.issue_key == key, d.state == "claimed")
            ).scalar()
        found = [moment for moment in (retry, lease) if moment is not None]
        return min(found) if found else None

    def counts(self, keys: Sequence[str]) -> dict[str, Counts]:
        """Delivery counts per issue; they add up to the audience."""
        query = (
            select(deliveries.c.issue_key, deliveries.c.state, func.count())
            .where(deliveries.c.issue_key.in_(list(keys)))
            .group_by(deliveries.c.issue_key, deliveries.c.state)
        )
        by_key: dict[str, dict[str, int]] = {key: {} for key in keys}
        with self.engine.connect() as connection:
            for key, state, count in connection.execute(query):
                by_key[key][state] = int(count)
        return {key: _counts(states) for key, states in by_key.items()}

    def settled(self, key: str) -> int:
        """How many of the issue's deliveries have a result (final, or waiting to retry)."""
        counts = self.counts([key])[key]
        return counts.audience - counts.pending

    def finish(self, key: str, *, now: datetime) -> IssueState | None:
        """Close a sending issue once nothing is left to do: sent, partial or failed."""
        counts = self.counts([key])[key]
        if counts.unfinished:
            return None
        given_up = counts.failed + counts.bounced
        final: IssueState = "sent" if not given_up else "failed" if not counts.sent else "partial"
        detail = "" if final == "sent" else f"{counts.failed} failed, {counts.bounced} bounced"
        return final if self.transition(key, "sending", final, now=now, detail=detail) else None

    # --- named leases (one scheduler per database) ---------------------------------------

    def acquire_lease(self, name: str, owner: str, *, ttl: timedelta, now: datetime) -> bool:
        """Take or renew a named lease; False while another owner holds it unexpired."""
        with self.engine.begin() as connection:
            if insert_ignore(
                connection, leases, {"name": name, "owner": owner, "expires": now + ttl}
            ):
                return True
            return bool(
                connection.execute(
                    update(leases)
                    .where(
                        leases.c.name == name,
                        or_(leases.c.owner == owner, leases.c.expires < now),
                    )
                    .values(owner=owner, expires=now + ttl)
                ).rowcount
            )

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(leases.c.owner, leases.c.expires).where(leases.c.name == name)
            ).first()
        return (row[0], row[1]) if row else None

    def release_lease(self, name: str, owner: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))


def _pending_row(key: str, chunk: int, subscriber_id: str, message_id: str) -> dict[str, Any]:
    return {
        "issue_key": key, "subscriber_id": subscriber_id, "chunk": chunk,
        "message_id": message_id, "state": "pending", "attempts": 0, "reply": "", "codes": "",
    }  # fmt: skip


class ResultWriter:
    """Commits results over one connection, held from the first commit to `close`: the
    sending loop's ledger thread commits every few messages, and checking a connection
    out of the pool and back for each commit cost more than the commit's own writes.
    Use it from one thread at a time."""

    def __init__(self, engine: Engine, record: _DriverStatement, bounce: _DriverStatement) -> None:
        self.engine = engine
        self._record = record
        self._bounce = bounce
        self._connection: PoolProxiedConnection | None = None

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> int:
        """See `Ledger.record`."""
        if not outcomes:
            return 0
        rows = [_outcome_row(outcome, now) for outcome in outcomes]
        bounced = [
            {"b_id": outcome.subscriber_id, "b_now": now}
            for outcome in outcomes
            if outcome.state == "bounced" and outcome.subscriber_id
        ]
        written = self._record_rows(rows, bounced)
        if bounced:
            _tell_bounces(self.engine, [str(row["b_id"]) for row in bounced], now)
        return written

    def _record_rows(self, rows: list[dict[str, Any]], bounced: list[dict[str, Any]]) -> int:
        if self._connection is not None:
            try:
                return self._commit(self._connection, rows, bounced)
            except Exception:  # a held connection may have gone stale: once more, fresh
                self._discard()
        self._connection = self.engine.raw_connection()
        try:
            return self._commit(self._connection, rows, bounced)
        except Exception:
            self._discard()
            raise

    def _commit(
        self,
        connection: PoolProxiedConnection,
        rows: list[dict[str, Any]],
        bounced: list[dict[str, Any]],
    ) -> int:
        """Safe to run twice: a row is written only under its claim, which the write
        clears, so a commit that went through before an error writes nothing again."""
        cursor = connection.cursor()
        try:
            cursor.executemany(self._record.sql, self._record.parameters(rows))
            written = int(cursor.rowcount)
            if bounced:
                cursor.executemany(self._bounce.sql, self._bounce.parameters(bounced))
        finally:
            cursor.close()
        connection.commit()
        return written

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.invalidate()  # rolls back, and the pool opens a new one

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()  # back to the pool

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _outcome_row(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "d_id": outcome.delivery_id,
        "d_claim": outcome.claim,
        "d_state": outcome.state,
        "d_attempt": 1 if outcome.counts_attempt else 0,
        "d_code": outcome.code,
        "d_reply": outcome.reply[:500] if outcome.code is not None else None,
        "d_code_text": "" if outcome.code is None else str(outcome.code),
        "d_next": outcome.next_attempt,
        "d_sent": now if outcome.state == "sent" else None,
    }


def _counts(states: dict[str, int]) -> Counts:
    return Counts(
        audience=sum(states.values()),
        sent=states.get("sent", 0),
        deferred=states.get("retry_wait", 0),
        failed=states.get("failed", 0),
        bounced=states.get("bounced", 0),
        skipped=states.get("skipped", 0),
        complained=states.get("complained", 0),
        pending=states.get("pending", 0) + states.get("claimed", 0),
        claimed=states.get("claimed", 0),
    )


# --- webhook events of issues and bounces ---------------------------------------------------


def _tell_issue(
    connection: Connection, key: str, expected: Sequence[str], new: str, now: datetime
) -> None:
    """issue.started when sending begins (not when a paused issue resumes), issue.finished
    with its counts when it ends; in the transaction that moves the issue."""
    from kabar.hooks.events import record_event

    if new == "sending" and "paused" not in expected:
        event = "issue.started"
    elif new in ("sent", "partial", "failed"):
        event = "issue.finished"
    else:
        return
    row = connection.execute(select(issues).where(issues.c.key == key)).first()
    if row is None:
        return
    data: dict[str, Any] = {
        "key": key, "digest": row.digest_id, "list": row.list_id, "state": new,
        "audience": row.audience,
    }  # fmt: skip
    if event == "issue.finished":
        states = connection.execute(
            select(deliveries.c.state, func.count())
            .where(deliveries.c.issue_key == key)
            .group_by(deliveries.c.state)
        )
        data["counts"] = _counts({state: int(count) for state, count in states}).to_dict()
    record_event(connection, event, data, now=now)


def _tell_bounces(engine: Engine, subscriber_ids: Sequence[str], now: datetime) -> None:
    """subscriber.bounced for each subscriber this commit set to bounced (right after it:
    the results go through the driver's own cursor)."""
    from kabar.hooks.events import record_event, subscriber_data
    from kabar.observe.metrics import BOUNCES

    with engine.begin() as connection:
        rows = connection.execute(
            select(subscribers).where(
                subscribers.c.id.in_(list(subscriber_ids)),
                subscribers.c.status == "bounced",
                subscribers.c.updated == now,
            )
        )
        for row in rows:
            record_event(connection, "subscriber.bounced", subscriber_data(row._mapping), now=now)
            BOUNCES.labels(row.list_id).inc()
