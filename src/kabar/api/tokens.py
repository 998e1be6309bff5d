"""API bearer tokens: `kbr_<id>_<secret>`, shown once when made; only the SHA-256 of the
secret is stored, so the database cannot give a token away. The id names the token in
lists, logs and rate limits. A revoked token stays listed, and never works again."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from kabar.store.tables import api_tokens

SCOPES = ("articles:write", "subscribers:read", "subscribers:write", "issues:read")
PREFIX = "kbr_"
_TOUCH_EVERY = timedelta(minutes=1)  # last_used is written at most this often per token


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scopes: tuple[str, ...]
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "scopes": list(self.scopes),
            "created": self.created.isoformat(),
            "last_used": self.last_used.isoformat() if self.last_used else None,
            "revoked": self.revoked.isoformat() if self.revoked else None,
        }  # fmt: skip


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, scopes: list[str], name: str = "") -> tuple[Token, str]:
        """A new token and its full text (the only time it is seen)."""
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if unknown or not scopes:
            raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        chosen = tuple(dict.fromkeys(scopes))
        with self.engine.begin() as connection:
            connection.execute(
                insert(api_tokens).values(
                    id=token_id, secret_hash=_hash(secret), name=name, scopes=" ".join(chosen),
                    created=now, last_used=None, revoked=None,
                )
            )  # fmt: skip
        return Token(token_id, name, chosen, now, None, None), f"{PREFIX}{token_id}_{secret}"

    def list(self) -> list[Token]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(api_tokens).order_by(api_tokens.c.created))
            return [_token(row) for row in rows]

    def revoke(self, token_id: str) -> bool:
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(api_tokens)
                    .where(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(None))
                    .values(revoked=datetime.now(UTC))
                ).rowcount
            )

    def verify(self, text: str) -> Token | None:
        """The live token `text` is, or None (unknown, altered or revoked)."""
        if not text.startswith(PREFIX):
            return None
        token_id, _, secret = text.removeprefix(PREFIX).partition("_")
        if not token_id or not secret:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or row.revoked is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        token = _token(row)
        self._touch(token)
        return token

    def _touch(self, token: Token) -> None:
        now = datetime.now(UTC)
        if token.last_used is not None and now - token.last_used < _TOUCH_EVERY:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(api_tokens).where(api_tokens.c.id == token.id).values(last_used=now)
            )


def _token(row: object) -> Token:
    values = row._mapping  # type: ignore[attr-defined]
    return Token(
        values["id"], values["name"], tuple(values["scopes"].split()), values["created"],
        values["last_used"], values["revoked"],
    )  # fmt: skip
