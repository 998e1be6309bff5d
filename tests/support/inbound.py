"""Shared by the tests of what comes back: a config with VERP and a bounce mailbox, and
returned messages built after the RFCs' own examples (RFC 3464 appendix, RFC 5965
section B, RFC 3834)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kabar import config as config_module
from kabar import verp
from kabar.config import Config
from kabar.inbound.process import Processor
from kabar.store import Store
from kabar.store.tables import deliveries, subscribers
from kabar.subscribers import Subscribers

from .delivery_setup import DIGEST, SECRET, prepare_store, send_now
from .project import WriteConfig

BOUNCE_PATTERN = "bounces+{token}@bounce.kabar.example.id"
UNSUBSCRIBE_PATTERN = "unsubscribe+{token}@bounce.kabar.example.id"


def inbound_config(
    write_config: WriteConfig,
    *,
    database_url: str,
    port: int | None = None,
    mailbox: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    webhooks: dict[str, Any] | None = None,
) -> Config:
    delivery: dict[str, Any] = {
        "transport": "outbox" if port is None else "smtp",
        "retry_backoff": "50ms", "retry_backoff_max": "200ms", "lease": "5s", "chunk_size": 50,
        "feedback_id": "{issue}:{digest}:{list}:kabar",
    }  # fmt: skip
    if port is not None:
        delivery["smtp"] = {
            "host": "127.0.0.1", "port": port, "starttls": False, "connections": 2,
            "timeout": "10s", "max_attempts": 3, "rate_per_second": 1000,
        }  # fmt: skip
    bounces: dict[str, Any] = {
        "address": BOUNCE_PATTERN,
        "unsubscribe_address": UNSUBSCRIBE_PATTERN,
        "policy": policy or {},
        "webhooks": webhooks or {},
    }
    if mailbox is not None:
        bounces["mailbox"] = mailbox
    path = write_config(
        storage={"database": database_url, "feeds": "public/"},
        lists=[
            {"id": "pembaca", "from": "Kabar Contoh <redaksi@kabar.example.id>"},
            {"id": "sore", "from": "Kabar Sore <redaksi@kabar.example.id>"},
        ],
        digests=[DIGEST],
        delivery=delivery,
        web={"base_url": "https://kabar.example.id", "secret_env": "KABAR_SECRET"},
        bounces=bounces,
    )
    return config_module.load(path)


def _date() -> str:
    return format_datetime(datetime(2026, 12, 5, 8, 0, tzinfo=UTC))


def dsn(
    to: str,
    recipient: str,
    status: str,
    *,
    action: str = "failed",
    original_id: str = "<original@kabar.example.id>",
    message_id: str | None = None,
) -> bytes:
    """A DSN shaped as RFC 3464's appendix examples are (and as Postfix writes them)."""
    message_id = message_id or f"<{uuid.uuid4().hex}@mta.example.net>"
    code = "550" if status.startswith("5") else "451"
    text = f"""\
From: MAILER-DAEMON@mta.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {_date()}
Message-ID: {message_id}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="RAA14128.773615765/mta.example.net"

--RAA14128.773615765/mta.example.net
Content-Type: text/plain

Your message could not be delivered to {recipient}.

--RAA14128.773615765/mta.example.net
Content-Type: message/delivery-status

Reporting-MTA: dns; mta.example.net
Arrival-Date: {_date()}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; {code} {status} <{recipient}>: mailbox says no

--RAA14128.773615765/mta.example.net
Content-Type: text/rfc822-headers

From: Kabar Contoh <redaksi@kabar.example.id>
To: {recipient}
Subject: Kabar pagi
Message-ID: {original_id}

--RAA14128.773615765/mta.example.net--
"""
    return text.replace("\n", "\r\n").encode()


def arf(
    to: str,
    *,
    original_from: str,
    recipient: str,
    original_id: str,
    list_unsubscribe: str = "",
    feedback_type: str = "abuse",
) -> bytes:
    """An abuse report as RFC 5965's appendix B.2 shows one."""
    listing = f"List-Unsubscribe: {list_unsubscribe}\n" if list_unsubscribe else ""
    text = f"""\
From: <abusedesk@example.com>
Date: {_date()}
Subject: FW: Kabar pagi
To: <{to}>
Message-ID: <{uuid.uuid4().hex}@example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on {_date()}.
For more information about this format please see
http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{original_from}>
Original-Rcpt-To: <{recipient}>
Arrival-Date: {_date()}
Reporting-MTA: dns; mail.example.com
Source-IP: 192.0.2.1
Authentication-Results: mail.example.com; spf=pass smtp.mail=redaksi@kabar.example.id
Reported-Domain: kabar.example.id

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <redaksi@kabar.example.id>
Received: from mailserver.example.net (mailserver.example.net
     [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;
     {_date()}
To: <{recipient}>
Subject: Kabar pagi
{listing}MIME-Version: 1.0
Content-type: text/plain
Message-ID: {original_id}
Date: {_date()}

Berita hari ini.

--part1_13d.2e68ed54_boundary--
"""
    return text.replace("\n", "\r\n").encode()


def auto_reply(to: str, *, header: bool = True) -> bytes:
    """An out-of-office reply as RFC 3834 section 3.1.7 asks for (Auto-Submitted:
    auto-replied), or without the header, as some clients still send them."""
    auto = "Auto-Submitted: auto-replied\r\n" if header else ""
    return (
        f"From: Budi <budi@example.net>\r\nTo: {to}\r\nDate: {_date()}\r\n"
        f"Subject: Out of Office: Kabar pagi\r\nMessage-ID: <{uuid.uuid4().hex}@example.net>\r\n"
        f"{auto}Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Saya sedang cuti sampai 10 Desember.\r\n"
    ).encode()


def unsubscribe_mail(to: str) -> bytes:
    return (
        f"From: Budi <budi@example.net>\r\nTo: {to}\r\nDate: {_date()}\r\n"
        f"Subject: unsubscribe\r\nMessage-ID: <{uuid.uuid4().hex}@example.net>\r\n"
        "Content-Type: text/plain\r\n\r\nunsubscribe\r\n"
    ).encode()


def write_maildir(folder: Path, messages: list[bytes]) -> Path:
    for part in ("tmp", "new", "cur"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(messages):
        (folder / "new" / f"{1700000000 + number}.M{number}P1.test").write_bytes(data)
    return folder


# The sent issue's deliveries by address: (delivery id, subscriber id, VERP, Message-ID).
Sent = tuple[Config, Store, dict[str, tuple[int, str, str, str]]]


@pytest.fixture(name="sent")
def sent_issue(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Sent:
    """An issue of 6 sent through the outbox: by address, (delivery id, subscriber id,
    VERP address, Message-ID)."""
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    config = inbound_config(write_config, database_url=database_url)
    prepare_store(config, store, 6)
    issue = send_now(config, store)
    assert issue is not None and issue.state == "sent"
    return config, store, deliveries_by_address(store)


def deliveries_by_address(store: Store) -> dict[str, tuple[int, str, str, str]]:
    d, s = deliveries.c, subscribers.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(d.id, d.issue_key, d.subscriber_id, d.message_id, s.email).join(
                subscribers, s.id == d.subscriber_id
            )
        ).all()
    return {
        row.email: (
            row.id, row.subscriber_id,
            verp.address(BOUNCE_PATTERN, verp.delivery_token(
                SECRET.encode(), row.id, row.issue_key, row.subscriber_id)),
            row.message_id,
        )
        for row in rows
    }  # fmt: skip


def processor(config: Config, store: Store, now: datetime | None = None) -> Processor:
    clock = (lambda: now) if now else (lambda: datetime.now(UTC))
    return Processor(config, store.engine, SECRET.encode(), clock=clock)


def status_of(store: Store, email: str, list_id: str = "pembaca") -> str:
    found = Subscribers(store.engine).find(list_id, email)
    assert found is not None
    return found.status


def delivery_state(store: Store, delivery_id: int) -> str:
    with store.engine.connect() as connection:
        state = connection.execute(
            select(deliveries.c.state).where(deliveries.c.id == delivery_id)
        ).scalar_one()
    return str(state)
