"""Message bytes: standards-complete headers, and nothing from data can bend a header."""

from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default

import pytest

from kabar.mail.message import BadRecipientError, MessageSkeleton, address_header
from kabar.mail.slots import SlotTemplate, new_markers

TIME = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=7)))


def _skeleton(
    subject: str = "Kabar pagi", sender: str = "Kabar <r@kabar.example.id>"
) -> MessageSkeleton:
    markers = new_markers()
    text = f"Halo, {markers['name']}!\n{markers['unsubscribe_url']}\n"
    html = f'<p>Halo, {markers["name"]}!</p><a href="{markers["unsubscribe_url"]}">u</a>'
    return MessageSkeleton(
        sender=sender,
        subject=subject,
        date=TIME,
        list_id="Pembaca <pembaca.kabar.example.id>",
        text=SlotTemplate.split(text, markers),
        html_part=SlotTemplate.split(html, markers),
        boundary_seed="k",
    )


def _build(skeleton: MessageSkeleton, **overrides: str) -> bytes:
    values = {
        "email": "budi@example.com",
        "name": "Budi",
        "message_id": "<m1@kabar.example.id>",
        "unsubscribe_url": "https://kabar.example.id/u/T",
        "unsubscribe_mailto": "mailto:u+T@kabar.example.id",
    } | overrides
    slot_values = {"name": values["name"], "unsubscribe_url": values["unsubscribe_url"],
                   "preferences_url": values["unsubscribe_url"]}  # fmt: skip
    return skeleton.build(**values, values=slot_values)  # type: ignore[arg-type]


def _headers(raw: bytes) -> list[str]:
    """Header names, one per header line (continuations joined)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in (" ", "\t")]


def test_an_injected_line_in_names_and_subjects_stays_inside_its_header() -> None:
    raw = _build(
        _skeleton(
            subject="Kabar\r\nBcc: victim@example.com", sender="Ka\nbar <r@kabar.example.id>"
        ),
        name="Budi\r\nBcc: victim@example.com\nX-Evil: 1",
    )
    names = _headers(raw)
    assert "Bcc" not in names and "X-Evil" not in names
    message = email.message_from_bytes(raw, policy=default)
    assert message["Subject"] == "Kabar Bcc: victim@example.com"
    assert message["To"].addresses[0].display_name == "Budi Bcc: victim@example.com X-Evil: 1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"email": "budi@example.com\r\nBcc: x@y.z"},
        {"email": "budi@example.com>, <x@y.z"},
        {"email": "not-an-address"},
        {"unsubscribe_url": "https://kabar.example.id/u/T\r\nBcc: x@y.z"},
        {"unsubscribe_url": "https://kabar.example.id/u/T>, <https://evil.example"},
        {"unsubscribe_mailto": "mailto:u@k.id\nX: y"},
        {"message_id": "<m1@kabar.example.id>\r\nBcc: x@y.z"},
    ],
)
def test_subscriber_values_that_could_end_a_header_are_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(BadRecipientError):
        _build(_skeleton(), **overrides)


def test_non_ascii_names_are_encoded_and_long_ones_cut() -> None:
    assert address_header("Budi Santoso", "b@e.id") == b"To: Budi Santoso <b@e.id>\r\n"
    assert address_header("Budi, Jr.", "b@e.id") == b'To: "Budi, Jr." <b@e.id>\r\n'
    encoded = address_header("Bü" * 200, "b@e.id")
    assert encoded.isascii() and all(len(line) < 100 for line in encoded.split(b"\r\n"))
    # RFC 2047 decoding (decode_header; the email parser adds spaces between words).
    decoded = str(make_header(decode_header(encoded.decode().removeprefix("To: "))))
    assert decoded == ("Bü" * 200)[:100] + " <b@e.id>"


def test_the_message_parses_as_multipart_alternative_text_first() -> None:
    message = email.message_from_bytes(_build(_skeleton(subject="Édisi {{ 7*7 }}")), policy=default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    text = parts[0].get_content().replace("\r\n", "\n")
    assert text == "Halo, Budi!\nhttps://kabar.example.id/u/T"  # the last CRLF is the boundary's
    assert message["Subject"] == "Édisi {{ 7*7 }}"
    assert message["Date"].datetime == TIME
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Feedback-ID" not in message
