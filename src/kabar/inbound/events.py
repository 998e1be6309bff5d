"""Reading the recorded results back (`kabar bounces list`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from kabar.store.tables import inbound_events


def recent(engine: Engine, *, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    e = inbound_events.c
    query = select(inbound_events).order_by(e.received.desc(), e.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(e.kind == kind)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    return [
        {
            "received": row["received"].isoformat(timespec="seconds"),
            "kind": row["kind"],
            "source": row["source"],
            "email": row["email"],
            "status": row["status"],
            "issue": row["issue_key"],
            "subscriber": row["subscriber_id"],
            "message_id": row["message_id"],
            "detail": row["detail"],
            "effect": row["effect"],
        }
        for row in rows
    ]
