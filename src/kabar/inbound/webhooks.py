"""Relays' reports, checked and turned into readings (kabar.web.inbound serves them).

Each relay proves who it is differently:

- Amazon SES, through SNS: the message is signed with the key of a certificate at
  `SigningCertURL`, which must be an SNS host's https URL (`SNS_CERT_URL`); kabar fetches
  it and checks the signature (SignatureVersion 1, SHA1, or 2, SHA256).
- Mailgun: `signature.signature` is the hex HMAC-SHA256 of timestamp + token under the
  webhook signing key.
- Postmark: HTTP basic auth, the user and password set on the webhook's URL.
- Any other relay: the hex HMAC-SHA256 of the raw body under a shared secret, in
  `X-Kabar-Signature: sha256=HEX`.

A report that fails its check changes nothing. One that passes is trusted like a signed
token: it may name the subscriber by address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kabar.inbound.parse import Addresses, Finding, Kind, Reading, bounce_kind

# https only, an SNS host of any region (or China's), a path to a .pem file.
SNS_CERT_URL = re.compile(
    r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]+\.pem", re.ASCII
)
SNS_CONFIRM_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?[^\s#]+", re.ASCII)


class BadReport(ValueError):
    """A report that is malformed or whose signature does not check (a 4xx, no change)."""


# --- checks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnsPolicy:
    """Which URLs an SNS message may name: the defaults are SNS's own hosts; only the
    tests pass others (a local server), never the config."""

    cert_url: re.Pattern[str] = SNS_CERT_URL
    confirm_url: re.Pattern[str] = SNS_CONFIRM_URL


_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    kind = message.get("Type")
    if kind not in _SNS_FIELDS:
        raise BadReport(f"unknown SNS message type {kind!r}")
    lines = []
    for name in _SNS_FIELDS[kind]:
        if name in message and message[name] is not None:
            lines += [name, str(message[name])]
        elif name != "Subject":
            raise BadReport(f"SNS message without {name}")
    return ("\n".join(lines) + "\n").encode()


def verify_sns(
    message: dict[str, Any], certificate: Callable[[str], bytes], policy: SnsPolicy
) -> None:
    """Raise BadReport unless the SNS message is signed by the certificate its URL names."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    url = str(message.get("SigningCertURL", ""))
    if not policy.cert_url.fullmatch(url):
        raise BadReport("SigningCertURL is not an SNS host's certificate")
    # Version 1 (SHA1) is what SNS topics sign with unless told to use version 2.
    versions = {"1": hashes.SHA1(), "2": hashes.SHA256()}  # noqa: S303
    algorithm = versions.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise BadReport("unknown SNS SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key = x509.load_pem_x509_certificate(certificate(url)).public_key()
    except ValueError:
        raise BadReport("unreadable SNS signature or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadReport("the SNS certificate's key is not RSA")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise BadReport("the SNS signature does not verify") from None


def verify_mailgun(payload: dict[str, Any], key: bytes) -> None:
    signature = payload.get("signature")
    if not isinstance(signature, dict):
        raise BadReport("no signature")
    signed = f"{signature.get('timestamp', '')}{signature.get('token', '')}".encode()
    expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("signature", ""))):
        raise BadReport("the Mailgun signature does not verify")


def verify_body(body: bytes, header: str, secret: bytes) -> None:
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header.strip()):
        raise BadReport("X-Kabar-Signature does not verify")


def verify_basic(header: str, username: str, password: str) -> None:
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:
        given = ""
    expected = f"{username}:{password}"
    if scheme.lower() != "basic" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadReport("wrong user or password")


# --- readings ------------------------------------------------------------------------------


def _token(addresses: Addresses, value: object) -> str | None:
    from kabar import verp

    if not addresses.bounce or not isinstance(value, str):
        return None
    return verp.token_in(addresses.bounce, value.split("<")[-1].strip(">"))


def _message_id(value: object) -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    return text if text.startswith("<") else f"<{text}>"


def ses_readings(notification: dict[str, Any], addresses: Addresses) -> list[Reading]:
    """Readings from an SES notification (the SNS message's Message, parsed)."""
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    mail = notification.get("mail") or {}
    token = _token(addresses, mail.get("source"))
    original = _message_id((mail.get("commonHeaders") or {}).get("messageId"))
    for header in mail.get("headers") or []:
        if str(header.get("name", "")).lower() == "message-id":
            original = _message_id(header.get("value"))
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        permanent = bounce.get("bounceType") == "Permanent"
        reading = Reading("ses:" + str(bounce.get("feedbackId") or mail.get("messageId")))
        for recipient in bounce.get("bouncedRecipients") or []:
            status = str(recipient.get("status") or "")
            reading.findings.append(
                Finding(
                    bounce_kind(status, permanent=permanent)
                    if status
                    else ("hard" if permanent else "soft"),
                    str(recipient.get("emailAddress", "")),
                    status,
                    str(recipient.get("diagnosticCode") or bounce.get("bounceSubType") or ""),
                    token,
                    None,
                    original,
                )
            )
        return [reading]
    if kind == "Complaint":
        complaint = notification.get("complaint") or {}
        reading = Reading("ses:" + str(complaint.get("feedbackId") or mail.get("messageId")))
        kind_found: Kind = (
            "delivered" if complaint.get("complaintFeedbackType") == "not-spam" else "complaint"
        )
        for recipient in complaint.get("complainedRecipients") or []:
            reading.findings.append(
                Finding(
                    kind_found,
                    str(recipient.get("emailAddress", "")),
                    "",
                    "ses complaint",
                    token,
                    None,
                    original,
                )
            )
        return [reading]
    return []  # deliveries, sends, opens: nothing to act on


def mailgun_readings(payload: dict[str, Any], addresses: Addresses) -> list[Reading]:
    event = payload.get("event-data")
    if not isinstance(event, dict):
        raise BadReport("no event-data")
    name = str(event.get("event", ""))
    status = event.get("delivery-status") or {}
    headers = (event.get("message") or {}).get("headers") or {}
    envelope = event.get("envelope") or {}
    kind: Kind
    if name == "failed":
        code = str(status.get("enhanced-code") or "")
        kind = bounce_kind(code, permanent=event.get("severity") == "permanent")
        if not code:
            kind = "hard" if event.get("severity") == "permanent" else "soft"
    elif name == "complained":
        kind = "complaint"
    elif name == "unsubscribed":
        kind = "unsubscribe"
    else:
        return []
    finding = Finding(
        kind, str(event.get("recipient", "")), str(status.get("enhanced-code") or ""),
        " ".join(str(status.get("description") or status.get("message") or "").split())[:500],
        _token(addresses, envelope.get("sender")), None, _message_id(headers.get("message-id")),
    )  # fmt: skip
    return [Reading("mailgun:" + str(event.get("id") or ""), [finding])]


_POSTMARK_KINDS: dict[str, Kind] = {
    "HardBounce": "hard", "BadEmailAddress": "hard", "SoftBounce": "soft",
    "Transient": "soft", "DnsError": "soft", "AutoResponder": "auto_reply",
    "SpamComplaint": "complaint", "SpamNotification": "complaint",
}  # fmt: skip


def postmark_readings(payload: dict[str, Any]) -> list[Reading]:
    record = str(payload.get("RecordType", ""))
    if record not in ("Bounce", "SpamComplaint"):
        return []
    kind = _POSTMARK_KINDS.get(str(payload.get("Type", "")), "unrecognised")
    if record == "SpamComplaint":
        kind = "complaint"
    finding = Finding(
        kind, str(payload.get("Email", "")), "",
        str(payload.get("Description") or payload.get("Details") or "")[:500],
    )  # fmt: skip
    return [Reading(f"postmark:{record}:{payload.get('ID', '')}", [finding])]


_GENERIC_KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint", "unsubscribe")


def generic_readings(payload: Any, addresses: Addresses) -> Iterator[Reading]:
    """`{"id", "type": hard|soft|complaint|unsubscribe, "email", "token"?, "message_id"?,
    "status"?, "detail"?}`, or a list of them."""
    for event in payload if isinstance(payload, list) else [payload]:
        if not isinstance(event, dict) or not event.get("id"):
            raise BadReport("each event needs an id")
        kind = event.get("type")
        if kind not in _GENERIC_KINDS:
            raise BadReport(f"type must be one of {', '.join(_GENERIC_KINDS)}")
        token = event.get("token")
        finding = Finding(
            kind, str(event.get("email", "")), str(event.get("status", ""))[:16],
            str(event.get("detail", ""))[:500],
            str(token) if token else _token(addresses, event.get("envelope_sender")),
            None, _message_id(event.get("message_id")),
        )  # fmt: skip
        yield Reading(f"webhook:{event['id']}", [finding])


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReport("the body is not JSON") from None
