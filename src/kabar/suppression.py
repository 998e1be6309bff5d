"""The global suppression list: addresses, or whole domains, kabar never mails.

A complaint adds the address (kabar.inbound); an admin adds, removes or imports entries
(`kabar suppression`), to bring a list over from another sender. No audience snapshot
(ledger.materialise), import or subscription ever includes a suppressed address. A
domain entry covers addresses at exactly that domain, not its subdomains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, exists, literal, or_, select

from kabar.addresses import InvalidAddress, normalise_address
from kabar.store import insert_ignore
from kabar.store.tables import suppressions

Kind = Literal["address", "domain"]
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
)


@dataclass(frozen=True)
class Entry:
    value: str
    kind: Kind
    reason: str
    detail: str
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value, "kind": self.kind, "reason": self.reason,
            "detail": self.detail, "created": self.created.isoformat(),
        }  # fmt: skip


def parse_entry(text: str) -> tuple[str, Kind]:
    """An address (lower-cased) or a domain (`example.com` or `@example.com`); raises
    ValueError saying what is wrong."""
    value = text.strip().lower()
    if "@" in value.lstrip("@"):
        try:
            return normalise_address(value).lower(), "address"
        except InvalidAddress as exc:
            raise ValueError(f"not an address or a domain: {text!r} ({exc})") from None
    domain = value.lstrip("@").rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not an address or a domain: {text!r}")
    return domain, "domain"


def suppressed_clause(email_key: Any) -> Any:
    """A SQL condition: true when the lower-cased address column `email_key` is
    suppressed, by itself or by its domain. Two lookups rather than one with OR, so the
    address is found by the primary key and only domain entries are scanned (by kind);
    domains hold no LIKE wildcards (see _DOMAIN)."""
    x = suppressions.c
    by_address = exists().where(x.value == email_key)
    by_domain = exists().where(x.kind == "domain", email_key.like(literal("%@") + x.value))
    return or_(by_address, by_domain)


def suppress_address(connection: Connection, email: str, detail: str, now: datetime) -> bool:
    """Suppress an address already validated (a subscriber's), inside the caller's
    transaction; False if it was there already."""

    row = {"value": email.lower(), "kind": "address", "reason": "complaint",
           "detail": detail[:500], "created": now}  # fmt: skip
    return insert_ignore(connection, suppressions, row)


class Suppressions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def is_suppressed(self, email: str) -> bool:
        key = email.strip().lower()
        values = [key, key.rpartition("@")[2]]
        with self.engine.connect() as connection:
            return (
                connection.execute(
                    select(suppressions.c.value).where(suppressions.c.value.in_(values)).limit(1)
                ).first()
                is not None
            )

    def add(
        self,
        text: str,
        *,
        reason: str = "admin",
        detail: str = "",
        now: datetime | None = None,
        connection: Connection | None = None,
    ) -> bool:
        """Add an entry; False if it was there already (it is left as it was)."""

        value, kind = parse_entry(text)
        row = {
            "value": value, "kind": kind, "reason": reason, "detail": detail[:500],
            "created": now or datetime.now(UTC),
        }  # fmt: skip
        if connection is not None:
            return insert_ignore(connection, suppressions, row)
        with self.engine.begin() as own:
            return insert_ignore(own, suppressions, row)

    def remove(self, text: str) -> bool:
        value, _ = parse_entry(text)
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    delete(suppressions).where(suppressions.c.value == value)
                ).rowcount
            )

    def entries(self, kind: Kind | None = None) -> Iterator[Entry]:
        query = select(suppressions).order_by(suppressions.c.kind, suppressions.c.value)
        if kind is not None:
            query = query.where(suppressions.c.kind == kind)
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                yield Entry(**row._mapping)

    def import_lines(
        self,
        path: Path,
        lines: Iterable[str],
        *,
        reason: str = "import",
        now: datetime | None = None,
    ) -> tuple[int, int, list[str]]:
        """(added, already there, problems as FILE:LINE: reason) from one entry per line;
        the first CSV column is used, `#` starts a comment, a header `email` is skipped."""
        added = existing = 0
        problems: list[str] = []
        moment = now or datetime.now(UTC)
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].split(",", 1)[0].strip().strip('"')
            if not text or (number == 1 and text.lower() in ("email", "address", "value")):
                continue
            try:
                if self.add(text, reason=reason, detail=f"from {path.name}", now=moment):
                    added += 1
                else:
                    existing += 1
            except ValueError as exc:
                problems.append(f"{path}:{number}: {exc}")
        return added, existing, problems
