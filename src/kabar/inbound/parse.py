"""What a returned message says: findings, one per recipient it reports on.

In order, a message is read as:

1. an RFC 3464 DSN (`multipart/report; report-type=delivery-status`): one finding per
   recipient block. `Action: failed` with a 5.x.x status is a hard bounce, except 5.2.2
   (mailbox full), which like any 4.x.x is soft; `Action: delayed` is only a warning.
2. an RFC 5965 ARF report (`report-type=feedback-report`): a complaint, unless its
   Feedback-Type is `not-spam`.
3. a bounce in an MTA's own format (no report part, but from MAILER-DAEMON or
   postmaster, or with X-Failed-Recipients): flufl.bounce's detectors decide permanent
   or temporary.
4. an RFC 3834 auto-reply or out-of-office note: ignored, never a bounce.
5. mail to the signed mailto: unsubscribe address: an unsubscribe request.
6. anything else: unrecognised, kept for a person.

The delivery comes from the VERP token of the address the message came to; the returned
original's Message-ID and List-Unsubscribe are read too (for complaints, which feedback
loops send to a fixed address). kabar.inbound.policy checks every token before acting.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from typing import Literal

from kabar import verp

Kind = Literal[
    "hard", "soft", "delayed", "delivered", "complaint", "unsubscribe", "auto_reply",
    "unrecognised",
]  # fmt: skip
# The kinds that change something; the others are only recorded.
ACTING: tuple[Kind, ...] = ("hard", "soft", "complaint", "unsubscribe")

# Where the address a message came to may be written, most telling first.
_ADDRESSED = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BOUNCER = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|autoreply|"
    r"balasan otomatis|sedang cuti|di luar kantor)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    kind: Kind
    recipient: str = ""  # the address the report is about, as the report gives it
    status: str = ""  # the enhanced status code, such as 5.1.1
    detail: str = ""  # the diagnostic, or why it was not understood
    delivery_token: str | None = None  # from the VERP address the message came to
    unsubscribe_token: str | None = None  # from the mailto: address, or the original's
    original_message_id: str = ""  # of kabar's message, where the returned part has it


@dataclass
class Reading:
    message_id: str  # the returned message's own, or a hash of its bytes
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Addresses:
    """The configured patterns (bounces.address, bounces.unsubscribe_address)."""

    bounce: str | None
    unsubscribe: str | None


def read(data: bytes, addresses: Addresses) -> Reading:
    """The findings of one raw message (RFC 5322 bytes)."""
    message = parse_message(data)
    own_id = _first_id(message.get("Message-ID", ""))
    reading = Reading(own_id or "sha256:" + hashlib.sha256(data).hexdigest()[:40])
    reading.findings = _findings(message, addresses)
    return reading


_HEADERS = HeaderParser()


def parse_message(data: bytes) -> Message:
    """The message as the email package reads it, but a report's parts are split here:
    the package compiles a regular expression for every new MIME boundary, which cost
    more than the rest of reading a DSN (each DSN has a boundary of its own). A report's
    parts are flat (text, the status fields, the returned original), so the split is
    simple; anything else goes to the package whole."""
    top = BytesHeaderParser().parsebytes(data)
    boundary = top.get_boundary()
    body = top.get_payload()
    if top.get_content_type() != "multipart/report" or not boundary or not isinstance(body, str):
        return email.message_from_bytes(data)
    pieces = ("\n" + body).split("\n--" + boundary)
    parts: list[Message | str] = []
    for piece in pieces[1:]:
        if piece.startswith("--"):
            break  # the closing boundary: the rest is epilogue
        text = piece.partition("\n")[2]
        parts.append(_report_part(text[:-1] if text.endswith("\r") else text))
    top.set_payload(parts)
    return top


def _report_part(text: str) -> Message:
    part = _HEADERS.parsestr(text)
    kind = part.get_content_type()
    payload = part.get_payload()
    if not isinstance(payload, str):
        return part
    if kind == "message/delivery-status":
        blocks = [b for b in re.split(r"\r?\n(?:[ \t]*\r?\n)+", payload.strip()) if b.strip()]
        part.set_payload([_HEADERS.parsestr(block + "\n") for block in blocks])
    elif kind in ("message/rfc822", "message/feedback-report", "text/rfc822-headers"):
        part.set_payload([_HEADERS.parsestr(payload)])  # only the headers are read
    return part


def _findings(message: Message, addresses: Addresses) -> list[Finding]:
    came_to = _addressed_to(message)
    token = _token(came_to, addresses.bounce)
    unsubscribe = _token(came_to, addresses.unsubscribe)
    report = (
        message.get_param("report-type")
        if message.get_content_type() == "multipart/report"
        else None
    )
    report_type = str(report).lower() if isinstance(report, str) else ""
    if report_type == "delivery-status":
        found = _dsn(message, token)
        if found:
            return found
    if report_type == "feedback-report":
        return [_complaint(message, token, addresses)]
    if _looks_like_bounce(message):
        return _heuristic_bounce(message, token)
    if _is_auto_reply(message):
        return [Finding("auto_reply", detail=_subject(message), delivery_token=token)]
    if unsubscribe:
        return [Finding("unsubscribe", detail=_subject(message), unsubscribe_token=unsubscribe)]
    return [Finding("unrecognised", detail="not a DSN, complaint, auto-reply or unsubscribe",
                    delivery_token=token)]  # fmt: skip


# --- RFC 3464 ----------------------------------------------------------------------------


def _dsn(message: Message, token: str | None) -> list[Finding]:
    original = _original_id(message)
    found = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the whole message
            if not isinstance(block, Message):
                continue
            finding = _recipient_block(block, token, original)
            if finding is not None:
                found.append(finding)
    return found


def _recipient_block(block: Message, token: str | None, original: str) -> Finding | None:
    recipient = _typed_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
    if not recipient:
        return None
    action = str(block.get("Action", "")).strip().lower()
    status = _status(str(block.get("Status", "")))
    detail = " ".join(str(block.get("Diagnostic-Code", "")).split())[:500]
    return Finding(_dsn_kind(action, status), recipient, status, detail, token, None, original)


def _dsn_kind(action: str, status: str) -> Kind:
    if action == "delayed":
        return "delayed"
    if action in ("delivered", "relayed", "expanded"):
        return "delivered"
    return bounce_kind(status)


def bounce_kind(status: str, permanent: bool | None = None) -> Kind:
    """hard for 5.x.x (5.2.2, mailbox full, is soft), soft for 4.x.x; without a status,
    what `permanent` says (hard when nothing does)."""
    if status.startswith("5.") and status != "5.2.2":
        return "hard"
    if status.startswith(("4.", "5.2.2")):
        return "soft"
    return "soft" if permanent is False else "hard"


# --- RFC 5965 ----------------------------------------------------------------------------


def _complaint(message: Message, token: str | None, addresses: Addresses) -> Finding:
    fields: Message | None = None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                fields = payload[0]
    feedback = str(fields.get("Feedback-Type", "")).strip().lower() if fields else ""
    original = _original(message)
    mail_from = _typed_address(fields.get("Original-Mail-From") if fields else None)
    delivery_token = token or _token([mail_from], addresses.bounce)
    if original is not None and not delivery_token:
        delivery_token = _token(_path_of(original.get("Return-Path")), addresses.bounce)
    unsubscribe = _unsubscribe_in(original, addresses.unsubscribe) if original else None
    recipient = _typed_address(fields.get("Original-Rcpt-To") if fields else None)
    kind: Kind = "delivered" if feedback == "not-spam" else "complaint"
    return Finding(
        kind, recipient, "", f"feedback-type: {feedback or 'missing'}", delivery_token,
        unsubscribe, _first_id(original.get("Message-ID", "")) if original else "",
    )  # fmt: skip


def _unsubscribe_in(original: Message, pattern: str | None) -> str | None:
    listing = str(original.get("List-Unsubscribe", ""))
    for target in re.findall(r"<mailto:([^>?]+)", listing):
        token = _token([target], pattern)
        if token:
            return token
    return None


# --- MTAs' own formats (flufl.bounce) -------------------------------------------------------


def _looks_like_bounce(message: Message) -> bool:
    sender = str(message.get("From", ""))
    return bool(message.get("X-Failed-Recipients")) or bool(_BOUNCER.search(sender))


def _heuristic_bounce(message: Message, token: str | None) -> list[Finding]:
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(message)
    original = _original_id(message)
    status = _status(_text_of(message)[:20000])
    found = [
        Finding(bounce_kind(status, permanent=True), _decode(address), status,
                "an MTA's own bounce format (flufl.bounce: permanent)", token, None, original)
        for address in sorted(permanent)
    ]  # fmt: skip
    found += [
        Finding("soft", _decode(address), status,
                "an MTA's own bounce format (flufl.bounce: temporary)", token, None, original)
        for address in sorted(temporary - permanent)
    ]  # fmt: skip
    if not found:
        # A bounce nobody could read: a person decides, whatever its token says.
        return [Finding("unrecognised", detail="a bounce in a format no detector knows",
                        delivery_token=token)]  # fmt: skip
    if token:  # the VERP token names one delivery: one finding, the worst of them
        return [min(found, key=lambda f: f.kind != "hard")]
    return found


def _decode(address: bytes | str) -> str:
    return address.decode(errors="replace") if isinstance(address, bytes) else address


# --- RFC 3834 ------------------------------------------------------------------------------


def _is_auto_reply(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("auto_reply", "junk"):
        return True
    if message.get("X-Auto-Response-Suppress") and _AUTO_SUBJECT.search(_subject(message)):
        return True
    return bool(_AUTO_SUBJECT.search(_subject(message)))


# --- helpers ---------------------------------------------------------------------------------


_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")


def _addressed_to(message: Message) -> list[str]:
    """Every address in the headers naming where the message went (the VERP or mailto
    address is one of them); a plain search, since only exact matches of a pattern count."""
    found: list[str] = []
    for name in _ADDRESSED:
        for value in message.get_all(name, []):
            found += _ADDRESS.findall(str(value))
    return found


def _token(candidates: list[str], pattern: str | None) -> str | None:
    if not pattern:
        return None
    for candidate in candidates:
        token = verp.token_in(pattern, candidate)
        if token:
            return token
    return None


def _path_of(value: object) -> list[str]:
    return [address for _, address in email.utils.getaddresses([str(value or "")])]


def _typed_address(value: object) -> str:
    """`rfc822; someone@example.net` → the address."""
    text = str(value or "").strip()
    kind, _, address = text.partition(";")
    return (address if address else kind).strip().strip("<>")


def _status(text: str) -> str:
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match else ""


def _first_id(text: object) -> str:
    match = _MESSAGE_ID.search(str(text or ""))
    return match.group(0) if match else ""


def _original(message: Message) -> Message | None:
    """The returned original (message/rfc822) or its headers (text/rfc822-headers)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                first = payload[0]
                return first if isinstance(first, Message) else None
        if kind == "text/rfc822-headers":
            if isinstance(part.get_payload(), list):  # split by parse_message already
                first = part.get_payload(0)
                return first if isinstance(first, Message) else None
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return email.message_from_bytes(payload)
    return None


def _original_id(message: Message) -> str:
    original = _original(message)
    return _first_id(original.get("Message-ID", "")) if original is not None else ""


def _subject(message: Message) -> str:
    return " ".join(str(message.get("Subject", "")).split())[:200]


def _text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("utf-8", errors="replace")
    return ""
