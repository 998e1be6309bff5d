"""Recording webhook events. `record_event` is called inside the transaction that makes
the change (a subscriber's status, an issue's state), so an event exists exactly when its
change was committed: a crash can lose neither. Delivery happens later, elsewhere.

The body is the Standard Webhooks shape, `{"type", "timestamp", "data"}`, stored as the
exact bytes that are signed and sent; its id (`msg_…`) is the webhook-id header, the same on
every retry, so receivers can drop repeats.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from kabar.store.tables import webhook_events

# The status a subscriber moves to, and the event that tells of it.
STATUS_EVENTS = {
    "active": "subscriber.confirmed",
    "unsubscribed": "subscriber.unsubscribed",
    "bounced": "subscriber.bounced",
    "complained": "subscriber.complained",
}


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(16)


def event_body(event_type: str, data: dict[str, Any], moment: datetime) -> str:
    timestamp = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data},
        ensure_ascii=False, separators=(",", ":"), sort_keys=True,
    )  # fmt: skip


def record_event(
    connection: Connection, event_type: str, data: dict[str, Any], *, now: datetime | None = None
) -> str:
    moment = now or datetime.now(UTC)
    event_id = new_event_id()
    connection.execute(
        insert(webhook_events).values(
            id=event_id, type=event_type, payload=event_body(event_type, data, moment),
            created=moment, fanned_out=0,
        )
    )  # fmt: skip
    return event_id


def subscriber_data(row: Any) -> dict[str, Any]:
    """What an event says of a subscriber (its id, list, address, status and origin)."""
    return {
        "id": row["id"], "list": row["list_id"], "email": row["email"],
        "status": row["status"], "origin": row["origin"],
    }  # fmt: skip
