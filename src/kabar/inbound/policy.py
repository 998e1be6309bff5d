"""What a finding changes, decided and written in the transaction that records it.

Each finding becomes one row of `inbound_events`, keyed by the returned message's
Message-ID plus the delivery (or recipient) it names: the row is inserted with ON
CONFLICT DO NOTHING, and only a fresh row acts. Reading the same message twice, or
again after a crash, therefore changes nothing.

The policy (bounces.policy, listmonk's and the big senders' defaults):

- hard bounce: the delivery becomes `bounced`, and the address's active subscriptions
  `bounced` at once;
- soft bounce: counted; `soft_limit` of them within `soft_window` make it a hard one;
- complaint: the subscription becomes `complained`, every other list of the address
  `unsubscribed`, and the address goes on the suppression list;
- mailto unsubscribe: the subscription becomes `unsubscribed`;
- auto-replies, delays and anything unrecognised change nothing.

Nothing acts on a token that does not verify. Only the person lifts a bounce, by
subscribing and confirming again; a complaint stays until an admin removes the address
from the suppression list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kabar import verp
from kabar.config import BouncePolicy
from kabar.inbound.parse import ACTING, Finding, Kind
from kabar.store.tables import UTCDateTime, deliveries, inbound_events, subscribers
from kabar.suppression import suppress_address

log = logging.getLogger(__name__)


_d, _s, _e = deliveries.c, subscribers.c, inbound_events.c
# Built once: building a statement cost more than running it, thousands of times a minute.
_DELIVERY = (
    select(_d.issue_key, _d.subscriber_id, _s.email)
    .join(subscribers, _s.id == _d.subscriber_id)
    .where(_d.id == bindparam("delivery_id"))
)
_MARK_DELIVERY = (
    update(deliveries)
    .where(_d.id == bindparam("m_delivery_id"), _d.state == "sent")
    .values(state=bindparam("m_state"))
)
_BOUNCE_ADDRESS = (
    update(subscribers)
    .where(_s.email_key == bindparam("b_email_key"), _s.status == "active")
    .values(status="bounced", updated=bindparam("now", type_=UTCDateTime))
)
_SOFT_COUNT = select(func.count()).where(
    _e.subscriber_id == bindparam("subscriber_id"),
    _e.kind == "soft",
    _e.received > bindparam("since", type_=UTCDateTime),
)
_EFFECT = (
    update(inbound_events)
    .where(_e.key == bindparam("event_key"))
    .values(effect=bindparam("e_effect"))
)


_INSERT_EVENT: dict[str, Any] = {}  # by dialect name


def _insert_event(connection: Connection, row: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING of one event; True when it was new."""
    name = connection.dialect.name
    statement = _INSERT_EVENT.get(name)
    if statement is None:
        dialect = postgresql if name == "postgresql" else sqlite
        statement = dialect.insert(inbound_events).on_conflict_do_nothing()
        _INSERT_EVENT[name] = statement = statement.returning(inbound_events.c.id)
    return connection.execute(statement, row).first() is not None


@dataclass(frozen=True)
class Target:
    """Who a finding is about: a delivery (and so its subscriber), or a subscriber."""

    subscriber_id: str
    email: str
    delivery_id: int | None = None
    issue_key: str | None = None


@dataclass(frozen=True)
class Result:
    kind: Kind
    fresh: bool  # False: read before, nothing changed now
    target: Target | None
    effect: str  # what changed, or why nothing did


def resolve(
    connection: Connection, secret: bytes, finding: Finding, *, by_address: bool = False
) -> tuple[Target | None, str]:
    """The target a finding's signed token names; (None, why) when none verifies.
    `by_address` lets an authenticated relay's report name a subscriber by address."""
    if finding.delivery_token:
        target = _by_delivery_token(connection, secret, finding.delivery_token)
        if target is None:
            return None, "its VERP token does not verify (forged or altered): nothing changed"
        return target, ""
    if finding.unsubscribe_token:
        subscriber_id = verp.unsubscribe_subscriber(secret, finding.unsubscribe_token)
        row = _subscriber(connection, subscriber_id) if subscriber_id else None
        if row is None:
            return None, "its unsubscribe token does not verify: nothing changed"
        return Target(row.id, row.email), ""
    if finding.original_message_id and (finding.kind == "complaint" or by_address):
        target = _by_message_id(connection, finding.original_message_id)
        if target is not None:
            return target, ""
    if by_address and finding.recipient:
        row = connection.execute(
            select(subscribers.c.id, subscribers.c.email)
            .where(subscribers.c.email_key == finding.recipient.strip().lower())
            .order_by(subscribers.c.created)
            .limit(1)
        ).first()
        if row is not None:
            return Target(row.id, row.email), ""
    return None, "names no delivery of kabar's (no VERP token, no known Message-ID)"


def _by_delivery_token(connection: Connection, secret: bytes, token: str) -> Target | None:
    delivery_id = verp.token_delivery(token)
    if delivery_id is None:
        return None
    row = connection.execute(_DELIVERY, {"delivery_id": delivery_id}).first()
    if row is None or not verp.delivery_token_matches(
        secret, token, delivery_id, row.issue_key, row.subscriber_id
    ):
        return None
    return Target(row.subscriber_id, row.email, delivery_id, row.issue_key)


def _by_message_id(connection: Connection, message_id: str) -> Target | None:
    d, s = deliveries.c, subscribers.c
    row = connection.execute(
        select(d.id, d.issue_key, d.subscriber_id, s.email)
        .join(subscribers, s.id == d.subscriber_id)
        .where(d.message_id == message_id)
        .limit(1)
    ).first()
    return Target(row.subscriber_id, row.email, row.id, row.issue_key) if row else None


def _subscriber(connection: Connection, subscriber_id: str) -> Any:
    return connection.execute(
        select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id == subscriber_id)
    ).first()


def record(
    connection: Connection,
    *,
    key: str,
    source: str,
    message_id: str,
    finding: Finding,
    target: Target | None,
    why_not: str,
    policy: BouncePolicy,
    now: datetime,
) -> Result:
    """Insert the finding's event and, if it is new, apply the policy; one transaction
    with the caller's other findings."""
    # A finding that would act but names nobody (no token, or a forged one) is for a person.
    kind: Kind = "unrecognised" if target is None and finding.kind in ACTING else finding.kind
    row = {
        "key": key[:400], "kind": kind, "source": source, "received": now,
        "message_id": message_id[:500],
        "delivery_id": target.delivery_id if target else None,
        "issue_key": target.issue_key if target else None,
        "subscriber_id": target.subscriber_id if target else None,
        "email": (target.email if target else finding.recipient)[:320],
        "status": finding.status[:16], "detail": (finding.detail or why_not)[:500],
        "effect": "",
    }  # fmt: skip
    if kind != finding.kind:  # an acting finding naming nobody: say what it would have been
        row["detail"] = f"{finding.kind}: {why_not}"[:500]
    if not _insert_event(connection, row):
        return Result(kind, False, target, "read before: nothing changed")
    effect = _apply(connection, kind, target, policy, now) if target else why_not
    if effect:
        connection.execute(_EFFECT, {"event_key": row["key"], "e_effect": effect[:500]})
    return Result(kind, True, target, effect)


def _apply(
    connection: Connection, kind: Kind, target: Target, policy: BouncePolicy, now: datetime
) -> str:
    if kind == "hard":
        return _hard(connection, target, now)
    if kind == "soft":
        return _soft(connection, target, policy, now)
    if kind == "complaint":
        return _complaint(connection, target, now)
    if kind == "unsubscribe":
        changed = _set_status(
            connection, [target.subscriber_id], "unsubscribed", ("active", "pending"), now
        )
        return "unsubscribed" if changed else "already left"
    return ""


def _hard(connection: Connection, target: Target, now: datetime) -> str:
    _mark_delivery(connection, target, "bounced")
    changed = _bounce_address(connection, target.email, now)
    return f"bounced ({changed} subscription(s))" if changed else "no active subscription"


def _soft(connection: Connection, target: Target, policy: BouncePolicy, now: datetime) -> str:
    count = connection.execute(
        _SOFT_COUNT, {"subscriber_id": target.subscriber_id, "since": now - policy.soft_window}
    ).scalar_one()
    if count < policy.soft_limit:
        return f"soft bounce {count} of {policy.soft_limit} in the window"
    changed = _bounce_address(connection, target.email, now)
    return f"bounced after {count} soft bounces" if changed else "no active subscription"


def _complaint(connection: Connection, target: Target, now: datetime) -> str:
    _mark_delivery(connection, target, "complained")
    _set_status(
        connection, [target.subscriber_id], "complained",
        ("pending", "active", "unsubscribed", "bounced"), now,
    )  # fmt: skip
    others = [sid for sid in _same_address(connection, target.email) if sid != target.subscriber_id]
    left = _set_status(connection, others, "unsubscribed", ("active", "pending"), now)
    detail = f"complaint, subscriber {target.subscriber_id}"
    suppress_address(connection, target.email, detail, now)
    return f"complained; unsubscribed from {left} other list(s); suppressed"


def _mark_delivery(connection: Connection, target: Target, state: str) -> None:
    """A sent delivery becomes bounced or complained, so the issue's counts tell it."""
    if target.delivery_id is not None:
        params = {"m_delivery_id": target.delivery_id, "m_state": state}
        connection.execute(_MARK_DELIVERY, params)


def _bounce_address(connection: Connection, email: str, now: datetime) -> int:
    """Every active subscription of the address (on any list) becomes bounced."""
    changed = int(
        connection.execute(_BOUNCE_ADDRESS, {"b_email_key": email.lower(), "now": now}).rowcount
    )
    if changed:
        log.info("%d subscription(s) now bounced", changed)
    return changed


def _same_address(connection: Connection, email: str) -> list[str]:
    return list(
        connection.execute(
            select(subscribers.c.id).where(subscribers.c.email_key == email.lower())
        ).scalars()
    )


def _set_status(
    connection: Connection, ids: list[str], status: str, expected: tuple[str, ...], now: datetime
) -> int:
    if not ids:
        return 0
    s = subscribers.c
    changed = int(
        connection.execute(
            update(subscribers)
            .where(s.id.in_(ids), s.status.in_(expected))
            .values(status=status, updated=now)
        ).rowcount
    )
    if changed:
        log.info("%d subscription(s) now %s", changed, status)
    return changed
