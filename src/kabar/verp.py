"""Signed addresses that lead what comes back to its delivery or subscriber.

The envelope sender of each delivery is a VERP address, `bounces+TOKEN@bounce.DOMAIN`
from `bounces.address`: TOKEN names the delivery row (which names the issue and the
subscriber) and carries an HMAC over the delivery, the issue and the subscriber, so a
DSN maps to exactly one delivery even when its body is truncated or rewritten, and a
forged one maps to none. The mailto: unsubscribe address in List-Unsubscribe
(`bounces.unsubscribe_address`) carries a token of its own, over the subscriber only.

Tokens are lower-case letters and digits: some MTAs lower-case local parts, and every
one keeps these as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_MAC_BYTES = 10  # 80 bits, 16 base32 characters: enough against guessing, short enough
_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([a-z2-7]{16})$")
_SUBSCRIBER = re.compile(r"^[0-9a-z]{1,32}$")


def _mac(secret: bytes, text: str) -> str:
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode().lower()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def delivery_token(secret: bytes, delivery_id: int, issue_key: str, subscriber_id: str) -> str:
    """The VERP token of one delivery: its id in base 36, then the signature."""
    mac = _mac(secret, f"verp|{delivery_id}|{issue_key}|{subscriber_id}")
    return f"{_base36(delivery_id)}-{mac}"


def token_delivery(token: str) -> int | None:
    """The delivery id a well-formed token claims (not yet verified), else None."""
    match = _TOKEN.fullmatch(token.lower())
    return int(match.group(1), 36) if match else None


def delivery_token_matches(
    secret: bytes, token: str, delivery_id: int, issue_key: str, subscriber_id: str
) -> bool:
    expected = delivery_token(secret, delivery_id, issue_key, subscriber_id)
    return hmac.compare_digest(expected, token.lower())


def unsubscribe_token(secret: bytes, subscriber_id: str) -> str:
    return f"{subscriber_id}-{_mac(secret, f'mailto-unsubscribe|{subscriber_id}')}"


def unsubscribe_subscriber(secret: bytes, token: str) -> str | None:
    """The subscriber a genuine mailto token names, or None for a forged or altered one."""
    subscriber_id, _, _ = token.lower().rpartition("-")
    if not _SUBSCRIBER.fullmatch(subscriber_id):
        return None
    expected = unsubscribe_token(secret, subscriber_id)
    return subscriber_id if hmac.compare_digest(expected, token.lower()) else None


def address(pattern: str, token: str) -> str:
    """The address `pattern` (with `{token}` in its local part) makes for `token`."""
    return pattern.replace("{token}", token)


def token_in(pattern: str, candidate: str) -> str | None:
    """The token of `candidate` if it is an address of `pattern` (case-insensitively),
    else None."""
    before, _, after = pattern.lower().partition("{token}")
    text = candidate.strip().strip("<>").lower()
    if not (text.startswith(before) and text.endswith(after)):
        return None
    token = text[len(before) : len(text) - len(after)]
    return token if token and re.fullmatch(r"[0-9a-z-]+", token) else None
