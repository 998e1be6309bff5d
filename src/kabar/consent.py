"""What a subscriber chose and agreed to, and their rights over it.

- The consent record of a subscription (`subscribers.consent`): how it came (form,
  import, api, admin), when, from which client IP and user agent, in which language the
  form was, the import's source file; and when and from where it was confirmed.
- Every change to a subscription (`subscriber_events`): what changed (before, after),
  when, from which IP and user agent.
- `export`: everything kabar holds about one address, as one JSON-ready dict.
- `forget`: erase one address's rows (subscriptions, deliveries, mails, events cascade)
  and keep only a SHA-256 of the address, so an import cannot bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, func, insert, select, update

from kabar.addresses import normalise_address
from kabar.store.tables import deliveries, forgotten, issues, mails, subscriber_events, subscribers
from kabar.subscribers import (
    Status,
    Subscriber,
    Subscribers,
    address_hash,
    choice_key,
)

Origin = Literal["form", "import", "api", "admin", "preferences"]
# The subscribers.origin column predates consent records: its names, in the record's terms.
ORIGIN_OF_COLUMN: dict[str, Origin] = {"web": "form", "cli": "admin", "import": "import"}
MAX_USER_AGENT = 300


@dataclass(frozen=True)
class Client:
    """Where a request came from, as far as kabar can tell."""

    ip: str = ""
    user_agent: str = ""

    def clipped(self) -> Client:
        return Client(self.ip[:64], self.user_agent[:MAX_USER_AGENT])


def consent_record(
    origin: Origin,
    *,
    now: datetime,
    client: Client = Client(),
    language: str = "",
    source: str = "",
) -> dict[str, Any]:
    """The consent a new subscription carries."""
    client = client.clipped()
    return {
        "origin": origin, "at": now.isoformat(), "ip": client.ip,
        "user_agent": client.user_agent, "language": language, "source": source,
        "confirmed_at": None, "confirmed_ip": "", "confirmed_user_agent": "",
    }  # fmt: skip


def described_consent(subscriber: Subscriber) -> dict[str, Any]:
    """The subscriber's consent record; for rows older than consent records, what the row
    itself says (its origin and creation time)."""
    if subscriber.consent:
        return dict(subscriber.consent)
    created = subscriber.created.isoformat() if subscriber.created else None
    origin = ORIGIN_OF_COLUMN.get(subscriber.origin, "admin")
    return {
        "origin": origin, "at": created, "ip": "", "user_agent": "", "language": "",
        "source": "", "confirmed_at": None, "confirmed_ip": "", "confirmed_user_agent": "",
    }  # fmt: skip


class Consent:
    """Consent records, change events and data rights, over kabar's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.subscribers = Subscribers(engine)

    # --- events --------------------------------------------------------------------------

    def record(
        self,
        subscriber_id: str,
        kind: str,
        detail: dict[str, Any],
        client: Client = Client(),
        *,
        now: datetime | None = None,
    ) -> None:
        client = client.clipped()
        with self.engine.begin() as connection:
            connection.execute(
                insert(subscriber_events).values(
                    subscriber_id=subscriber_id,
                    at=now or datetime.now(UTC),
                    kind=kind,
                    detail=detail,
                    ip=client.ip,
                    user_agent=client.user_agent,
                )
            )

    def events(self, subscriber_id: str) -> list[dict[str, Any]]:
        query = (
            select(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .order_by(subscriber_events.c.at, subscriber_events.c.id)
        )
        with self.engine.connect() as connection:
            return [
                {
                    "at": row.at.isoformat(),
                    "kind": row.kind,
                    "detail": row.detail,
                    "ip": row.ip,
                    "user_agent": row.user_agent,
                }
                for row in connection.execute(query)
            ]

    # --- changes -------------------------------------------------------------------------

    def confirmed(
        self, subscriber: Subscriber, client: Client, *, now: datetime | None = None
    ) -> None:
        """Add when and from where the subscription was confirmed to its record."""
        moment = now or datetime.now(UTC)
        clipped = client.clipped()
        record = described_consent(subscriber) | {
            "confirmed_at": moment.isoformat(), "confirmed_ip": clipped.ip,
            "confirmed_user_agent": clipped.user_agent,
        }  # fmt: skip
        with self.engine.begin() as connection:
            connection.execute(
                update(subscribers).where(subscribers.c.id == subscriber.id).values(consent=record)
            )
        self.record(subscriber.id, "confirmed", {}, client, now=moment)

    def change(
        self,
        subscriber: Subscriber,
        client: Client,
        *,
        name: str | None = None,
        locale: str | None = None,
        sections: Iterable[str] | None = None,
        digests: Iterable[str] | None = None,
        status: Status | None = None,
        now: datetime | None = None,
    ) -> dict[str, list[Any]]:
        """Change what is given; record what changed (field: [before, after]) as one event."""
        before = {
            "name": subscriber.name, "locale": subscriber.locale,
            "sections": choice_key(subscriber.sections), "digests": choice_key(subscriber.digests),
            "status": subscriber.status,
        }  # fmt: skip
        wanted = {
            "name": name, "locale": locale,
            "sections": None if sections is None else choice_key(sections),
            "digests": None if digests is None else choice_key(digests), "status": status,
        }  # fmt: skip
        changed = {
            key: value
            for key, value in wanted.items()
            if value is not None and value != before[key]
        }
        if not changed:
            return {}
        moment = now or datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber.id)
                .values(**changed, updated=moment)
            )
        detail = {key: [before[key], value] for key, value in changed.items()}
        self.record(subscriber.id, "changed", detail, client, now=moment)
        return detail

    # --- data rights ---------------------------------------------------------------------

    def rows_of(self, email: str) -> list[Subscriber]:
        """Every subscription of the address, on every list."""
        key = normalise_address(email).lower()
        query = select(subscribers.c.id).where(subscribers.c.email_key == key)
        with self.engine.connect() as connection:
            ids = list(connection.execute(query.order_by(subscribers.c.list_id)).scalars())
        return [found for sid in ids if (found := self.subscribers.get(sid)) is not None]

    def export(self, email: str) -> dict[str, Any]:
        """Everything kabar holds about the address: subscriptions with their consent and
        changes, deliveries (bounced ones listed again under bounces), and mails."""
        rows = self.rows_of(email)
        ids = [row.id for row in rows]
        delivered = self._deliveries(ids)
        with self.engine.connect() as connection:
            mail_rows = connection.execute(
                select(mails).where(mails.c.subscriber_id.in_(ids)).order_by(mails.c.queued)
            ).all()
        return {
            "email": rows[0].email if rows else normalise_address(email),
            "exported": datetime.now(UTC).isoformat(),
            "subscriptions": [
                row.to_dict() | {"consent": described_consent(row), "events": self.events(row.id)}
                for row in rows
            ],
            "deliveries": delivered,
            "bounces": [entry for entry in delivered if entry["state"] == "bounced"],
            "mails": [
                {
                    "kind": m.kind,
                    "list": m.list_id,
                    "message_id": m.message_id,
                    "state": m.state,
                    "queued": m.queued.isoformat(),
                    "sent": m.sent.isoformat() if m.sent else None,
                    "reply": m.reply,
                }
                for m in mail_rows
            ],
        }

    def _deliveries(self, ids: list[str]) -> list[dict[str, Any]]:
        d = deliveries.c
        query = (
            select(d.issue_key, issues.c.digest_id, d.subscriber_id, d.message_id, d.state,
                   d.attempts, d.code, d.reply, d.sent, d.variant)
            .join(issues, issues.c.key == d.issue_key)
            .where(d.subscriber_id.in_(ids))
            .order_by(d.issue_key)
        )  # fmt: skip
        with self.engine.connect() as connection:
            return [
                {
                    "issue": row.issue_key,
                    "digest": row.digest_id,
                    "subscriber": row.subscriber_id,
                    "message_id": row.message_id,
                    "state": row.state,
                    "attempts": row.attempts,
                    "code": row.code,
                    "reply": row.reply,
                    "sent": row.sent.isoformat() if row.sent else None,
                    "variant": row.variant or "",
                }
                for row in connection.execute(query)
            ]

    def forget(self, email: str, *, now: datetime | None = None) -> int:
        """Erase the address's subscriptions and all that hangs on them; keep its hash.
        Returns how many subscriptions were erased."""
        rows = self.rows_of(email)
        ids = [row.id for row in rows]
        with self.engine.begin() as connection:
            # Explicit, not only ON DELETE CASCADE: SQLite enforces it only with its pragma.
            for table in (subscriber_events, mails, deliveries):
                connection.execute(delete(table).where(table.c.subscriber_id.in_(ids)))
            connection.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
            digest = address_hash(normalise_address(email))
            exists = connection.execute(
                select(func.count()).where(forgotten.c.email_hash == digest)
            ).scalar()
            if not exists:
                connection.execute(
                    insert(forgotten).values(email_hash=digest, forgotten=now or datetime.now(UTC))
                )
        return len(ids)

    def is_forgotten(self, email: str) -> bool:
        digest = address_hash(normalise_address(email))
        with self.engine.connect() as connection:
            query = select(func.count()).where(forgotten.c.email_hash == digest)
            return bool(connection.execute(query).scalar())
