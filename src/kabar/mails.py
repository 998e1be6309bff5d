"""Transactional mails: the ones kabar sends one at a time, outside any issue (a subscribe
confirmation). Each is recorded before it goes out and again with the transport's answer,
so a failed send is never lost silently and an admin can see when a link was mailed and
whether the server took it (`kabar subscribers mails`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, insert, select, update

from kabar.store.tables import mails

Kind = Literal["confirm", "welcome"]
State = Literal["queued", "sent", "failed"]


@dataclass(frozen=True)
class Mail:
    id: int
    kind: str
    list_id: str
    subscriber_id: str
    email: str
    message_id: str
    state: str
    queued: datetime
    sent: datetime | None
    code: int | None
    reply: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "list": self.list_id,
            "subscriber": self.subscriber_id, "email": self.email,
            "message_id": self.message_id, "state": self.state,
            "queued": self.queued.isoformat(),
            "sent": self.sent.isoformat() if self.sent else None,
            "code": self.code, "reply": self.reply, "error": self.error,
        }  # fmt: skip


_FIELDS = tuple(f.name for f in fields(Mail))


class Mails:
    """The record of transactional mails in kabar's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def queue(
        self,
        kind: Kind,
        *,
        list_id: str,
        subscriber_id: str,
        email: str,
        message_id: str,
        now: datetime | None = None,
    ) -> int:
        """Record a mail about to be sent; its id, for `finish`."""
        row = {
            "kind": kind, "list_id": list_id, "subscriber_id": subscriber_id, "email": email,
            "message_id": message_id, "state": "queued", "queued": now or datetime.now(UTC),
            "reply": "", "error": "",
        }  # fmt: skip
        with self.engine.begin() as connection:
            key = connection.execute(insert(mails).values(row)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def finish(
        self,
        mail_id: int,
        *,
        sent: bool,
        code: int | None,
        reply: str = "",
        error: str = "",
        now: datetime | None = None,
    ) -> None:
        """Record the transport's answer (or, with no answer, the error)."""
        values: dict[str, Any] = {
            "state": "sent" if sent else "failed", "code": code, "reply": reply, "error": error,
        }  # fmt: skip
        if sent:
            values["sent"] = now or datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(update(mails).where(mails.c.id == mail_id).values(values))

    def iter(self, *, email: str | None = None, list_id: str | None = None) -> Iterator[Mail]:
        """Mails, oldest first; only those to `email` (any case) or of `list_id` if given."""
        query = select(mails).order_by(mails.c.queued, mails.c.id)
        if email is not None:
            query = query.where(func.lower(mails.c.email) == email.strip().lower())
        if list_id is not None:
            query = query.where(mails.c.list_id == list_id)
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                yield Mail(**{name: row._mapping[name] for name in _FIELDS})
