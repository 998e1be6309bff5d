"""Per-issue progress from the delivery ledger, for the metrics of the scheduler's process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from kabar.ledger import OPEN_STATES, Ledger

RECENT = timedelta(days=2)  # finished issues stay visible this long (alerts look back)


def issue_progress(engine: Engine) -> Iterator[tuple[str, str, dict[str, int]]]:
    """(issue key, state, counts) of the open issues and those of the last two days."""
    ledger = Ledger(engine)
    since = datetime.now(UTC) - RECENT
    chosen = [
        issue for issue in ledger.issues(limit=200)
        if issue.state in OPEN_STATES or issue.updated >= since
    ]  # fmt: skip
    counts = ledger.counts([issue.key for issue in chosen])
    for issue in chosen:
        yield issue.key, issue.state, counts[issue.key].to_dict()
