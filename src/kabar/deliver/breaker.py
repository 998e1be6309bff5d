"""The bounce-rate circuit breaker: an issue whose first deliveries bounce hard too often
pauses, and says why. A bad import (old addresses, typos, a bought list) shows itself in
the first thousand messages; sending the rest would cost the sender its reputation.

Hard bounces count whether the receiving server refused at once (5xx during the SMTP
session) or sent a DSN later (kabar.inbound marks the delivery bounced). The breaker
trips once per issue: after an admin resumes it (`kabar send --resume KEY`) it stays
quiet, since they have looked.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import Engine, func, select

from kabar.config import BouncePolicy
from kabar.ledger import Ledger
from kabar.store import insert_ignore
from kabar.store.tables import deliveries, issues, settings

log = logging.getLogger(__name__)


def _tripped_key(issue_key: str) -> str:
    return "breaker:" + hashlib.sha256(issue_key.encode()).hexdigest()[:40]


def hard_bounces_in_sample(engine: Engine, issue_key: str, sample: int) -> tuple[int, int]:
    """(hard bounces, deliveries) among the issue's first `sample` deliveries."""
    d = deliveries.c
    first = (
        select(d.id, d.state).where(d.issue_key == issue_key).order_by(d.id).limit(sample)
    ).subquery()
    query = select(func.count(), func.count().filter(first.c.state == "bounced"))
    with engine.connect() as connection:
        total, bounced = connection.execute(query.select_from(first)).one()
    return int(bounced or 0), int(total or 0)


def check(engine: Engine, issue_key: str, policy: BouncePolicy, *, now: datetime) -> str | None:
    """Pause the issue if its hard bounces passed the share; the reason when this call
    paused it, else None."""
    bounced, total = hard_bounces_in_sample(engine, issue_key, policy.breaker_sample)
    limit = policy.breaker_share * total
    if not total or bounced <= limit or bounced < policy.breaker_minimum:
        return None
    with engine.begin() as connection:
        state = connection.execute(select(issues.c.state).where(issues.c.key == issue_key)).scalar()
        if state != "sending":
            return None
        if not insert_ignore(
            connection, settings, {"key": _tripped_key(issue_key), "value": now.isoformat()}
        ):
            return None  # tripped before, and an admin resumed it since
    reason = (
        f"bounce rate: {bounced} of the first {total} deliveries bounced hard "
        f"(over {policy.breaker_share:.0%}); check the list's addresses (a bad import?), "
        f"then: kabar send --resume {issue_key}"
    )
    if Ledger(engine).transition(issue_key, "sending", "paused", now=now, detail=reason):
        log.error("%s: paused: %s", issue_key, reason)
        return reason
    return None
