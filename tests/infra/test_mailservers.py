"""The mail servers the bounce tests stand on: mail through the private Postfix reaches the
sink or comes back as real DSNs in the bounce Maildir, and Dovecot serves those over IMAP
with TLS and a password."""

from __future__ import annotations

import imaplib
import smtplib
import uuid
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from ..support.mailservers import (
    BOUNCE_DOMAIN,
    RECIPIENT_DOMAIN,
    Dovecot,
    PolicySink,
    Postfix,
    parse,
    require,
    wait_for_mail,
)


def send_through(postfix: Postfix, sender: str, recipients: list[str]) -> str:
    """One message to all `recipients`; returns its Message-ID."""
    message_id = f"<{uuid.uuid4().hex}@kabar.example.id>"
    message = EmailMessage()
    message["From"] = "Kabar Contoh <redaksi@kabar.example.id>"
    message["To"] = ", ".join(recipients)
    message["Subject"] = "Kabar hari ini"
    message["Message-ID"] = message_id
    message.set_content("Berita terkait: tidak ada.\n")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
        refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
    assert refused == {}  # Postfix queues all three: the answers come later, as DSNs
    return message_id


def dsn_recipients(dsn: EmailMessage) -> dict[str, dict[str, str]]:
    """Final-Recipient → its per-recipient fields, from the message/delivery-status part."""
    found: dict[str, dict[str, str]] = {}
    for part in dsn.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        assert isinstance(blocks, list)
        for block in blocks[1:]:  # the first block is per message
            fields = {name.lower(): str(value) for name, value in block.items()}
            found[fields["final-recipient"].partition(";")[2].strip()] = fields
    return found


@pytest.fixture
def bounced(postfix: Postfix) -> tuple[str, str, list[EmailMessage]]:
    """Mail for one accepted, one rejected and one deferred recipient, and the DSNs that
    came back to its VERP sender."""
    token = f"abc{uuid.uuid4().hex[:8]}"
    sender = f"bounces+{token}@{BOUNCE_DOMAIN}"
    # The sink answers by local part: "reject" 550 5.1.1, "defer" 451 4.2.0, others 250.
    recipients = [f"{local}@{RECIPIENT_DOMAIN}" for local in (f"ok.{token}", "reject", "defer")]
    message_id = send_through(postfix, sender, recipients)
    dsns = wait_for_mail(
        postfix.maildir, lambda m: m["To"] == sender and message_id in m.as_string(), 2
    )
    return sender, message_id, dsns


def test_the_accepted_recipient_reaches_the_sink(
    bounced: tuple[str, str, list[EmailMessage]], mail_sink: tuple[PolicySink, Controller]
) -> None:
    sender, message_id, _ = bounced
    token = sender.partition("+")[2].partition("@")[0]
    received = mail_sink[0].by_recipient()
    assert received.get(f"ok.{token}@{RECIPIENT_DOMAIN}") == [message_id]
    refused = [f"reject@{RECIPIENT_DOMAIN}", f"defer@{RECIPIENT_DOMAIN}"]
    assert not [m for address in refused for m in received.get(address, []) if m == message_id]


def test_a_rejected_and_a_deferred_recipient_come_back_as_dsns(
    bounced: tuple[str, str, list[EmailMessage]],
) -> None:
    sender, message_id, dsns = bounced
    assert len(dsns) == 2
    fields: dict[str, dict[str, str]] = {}
    for dsn in dsns:
        assert dsn.get_content_type() == "multipart/report"
        assert dsn.get_param("report-type") == "delivery-status"
        assert dsn["To"] == sender
        assert message_id in dsn.as_string()  # the returned headers name the message
        found = dsn_recipients(dsn)
        assert len(found) == 1, "one DSN per refused recipient"
        fields |= found
    rejected, deferred = fields[f"reject@{RECIPIENT_DOMAIN}"], fields[f"defer@{RECIPIENT_DOMAIN}"]
    assert rejected["status"] == "5.1.1"
    assert rejected["action"] == "failed"
    assert "550 5.1.1" in rejected["diagnostic-code"]
    # One try, then a bounce (maximal_queue_lifetime = 0): the sink's 4.2.0 is final here.
    assert deferred["status"] == "4.2.0"
    assert deferred["action"] == "failed"
    assert "451 4.2.0" in deferred["diagnostic-code"]
    for address, block in fields.items():
        for name in ("original-recipient", "final-recipient"):
            kind, _, value = block[name].partition(";")
            assert (kind.strip().lower(), value.strip()) == ("rfc822", address)


def test_dovecot_serves_the_same_dsns_over_imap_with_tls(
    bounced: tuple[str, str, list[EmailMessage]], dovecot: Dovecot
) -> None:
    sender, message_id, dsns = bounced
    with imaplib.IMAP4_SSL(
        "127.0.0.1", dovecot.port, ssl_context=dovecot.client_context(), timeout=10
    ) as imap:
        imap.login(dovecot.user, dovecot.password)
        imap.select("INBOX", readonly=True)
        status, data = imap.search(None, "TO", f'"{sender}"')
        assert status == "OK"
        fetched = []
        for number in data[0].split():
            status, parts = imap.fetch(number, "(BODY.PEEK[])")
            assert status == "OK"
            fetched.append(parse(parts[0][1]))
    assert sorted(m["Message-ID"] for m in fetched) == sorted(m["Message-ID"] for m in dsns)
    assert all(m.get_content_type() == "multipart/report" for m in fetched)
    assert all(message_id in m.as_string() for m in fetched)


def test_dovecot_refuses_a_wrong_password(dovecot: Dovecot) -> None:
    with (
        imaplib.IMAP4_SSL(
            "127.0.0.1", dovecot.port, ssl_context=dovecot.client_context(), timeout=10
        ) as imap,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        imap.login(dovecot.user, "bukan-sandinya")


def test_missing_servers_skip_but_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-mta is not installed"):
        require("no-such-mta")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="real mail servers needed under CI"):
        require("no-such-mta")
