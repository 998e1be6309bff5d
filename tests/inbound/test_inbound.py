"""What comes back, read from files and a Maildir: DSNs, ARF complaints, auto-replies,
mailto unsubscribes, forged tokens, the policy, idempotence, a crash mid-batch, the
suppression list and the bounce-rate breaker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kabar import verp
from kabar.cli import cli
from kabar.inbound.parse import Addresses, read
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.subscribers import Subscribers, SuppressedAddress
from kabar.suppression import Suppressions

from ..support.delivery_setup import SECRET, prepare_store, send_now
from ..support.inbound import (
    BOUNCE_PATTERN,
    UNSUBSCRIBE_PATTERN,
    Sent,
    arf,
    auto_reply,
    deliveries_by_address,
    delivery_state,
    dsn,
    inbound_config,
    processor,
    sent_issue,  # noqa: F401 - the `sent` fixture
    status_of,
    unsubscribe_mail,
    write_maildir,
)
from ..support.project import WriteConfig

ADDRESSES = Addresses(BOUNCE_PATTERN, UNSUBSCRIBE_PATTERN)


# --- reading ------------------------------------------------------------------------------


def test_a_dsn_reads_per_recipient_status_and_the_verp_token() -> None:
    token = verp.delivery_token(b"k", 42, "harian:pembaca:2026-12-05", "abc")
    to = verp.address(BOUNCE_PATTERN, token)
    hard = read(dsn(to, "a@example.net", "5.1.1"), ADDRESSES).findings
    assert [(f.kind, f.status, f.recipient, f.delivery_token) for f in hard] == [
        ("hard", "5.1.1", "a@example.net", token)
    ]
    assert hard[0].original_message_id == "<original@kabar.example.id>"
    assert read(dsn(to, "a@example.net", "4.2.0"), ADDRESSES).findings[0].kind == "soft"
    assert read(dsn(to, "a@example.net", "5.2.2"), ADDRESSES).findings[0].kind == "soft"
    delayed = read(dsn(to, "a@example.net", "4.4.7", action="delayed"), ADDRESSES)
    assert delayed.findings[0].kind == "delayed"


def test_auto_replies_are_not_bounces() -> None:
    to = verp.address(BOUNCE_PATTERN, verp.delivery_token(b"k", 1, "i", "s"))
    assert [f.kind for f in read(auto_reply(to), ADDRESSES).findings] == ["auto_reply"]
    no_header = read(auto_reply(to, header=False), ADDRESSES).findings
    assert [f.kind for f in no_header] == ["auto_reply"]


def test_an_mta_bounce_without_a_report_part_is_read_by_flufl_bounce() -> None:
    to = verp.address(BOUNCE_PATTERN, verp.delivery_token(b"k", 7, "i", "s"))
    # Exim's own format: plain text, X-Failed-Recipients.
    exim = (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n"
        f"To: {to}\r\nSubject: Mail delivery failed: returning message to sender\r\n"
        "X-Failed-Recipients: gone@example.net\r\nAuto-Submitted: auto-replied\r\n"
        "Message-ID: <exim-1@mx.example.net>\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  gone@example.net\r\n"
        "    SMTP error from remote mail server after RCPT TO:<gone@example.net>:\r\n"
        "    550 5.1.1 User unknown\r\n"
    ).encode()
    findings = read(exim, ADDRESSES).findings
    assert [(f.kind, f.recipient, f.status) for f in findings] == [
        ("hard", "gone@example.net", "5.1.1")
    ]


# --- acting ---------------------------------------------------------------------------------


def test_hard_bounce_marks_the_subscriber_and_the_delivery_once(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca000@example.com"
    delivery_id, _, to, _ = by_address[address]
    message = dsn(to, address, "5.1.1")
    first = processor(config, store).messages([message], "file")
    assert [r.kind for r in first[0].results] == ["hard"] and first[0].recognised
    assert status_of(store, address) == "bounced"
    assert delivery_state(store, delivery_id) == "bounced"
    counts = Ledger(store.engine).counts([Ledger(store.engine).issues()[0].key])
    (only,) = counts.values()
    assert (only.audience, only.sent, only.bounced) == (6, 5, 1)
    # The same DSN again changes nothing, even after the person re-joined.
    Subscribers(store.engine).set_status(by_address[address][1], "active")
    again = processor(config, store).messages([message], "file")
    assert not again[0].results[0].fresh
    assert status_of(store, address) == "active"


def test_soft_bounces_count_within_the_window(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca001@example.com"
    to = by_address[address][2]
    start = datetime(2026, 12, 1, tzinfo=UTC)
    # Two, then two more three weeks later: the first two fell out of the 14-day window.
    for day in (0, 3, 20, 22):
        bounce = dsn(to, address, "4.2.2")
        processor(config, store, start + timedelta(days=day)).messages([bounce], "file")
        assert status_of(store, address) == "active"
    third = dsn(to, address, "4.4.1")
    processor(config, store, start + timedelta(days=23)).messages([third], "file")
    assert status_of(store, address) == "bounced"


def test_a_forged_token_changes_nothing_and_is_kept_for_a_person(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca002@example.com"
    delivery_id, subscriber_id, _, _ = by_address[address]
    forged = verp.address(
        BOUNCE_PATTERN, verp.delivery_token(b"not-the-secret", delivery_id, "x", subscriber_id)
    )
    done = processor(config, store).messages([dsn(forged, address, "5.1.1")], "file")
    assert [r.kind for r in done[0].results] == ["unrecognised"] and not done[0].recognised
    assert "does not verify" in done[0].results[0].effect
    assert status_of(store, address) == "active"
    assert delivery_state(store, delivery_id) == "sent"


def test_a_complaint_unsubscribes_everywhere_and_suppresses(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca003@example.com"
    delivery_id, _, _, message_id = by_address[address]
    sore, _ = Subscribers(store.engine).add("sore", address)
    # Feedback loops write to a fixed address: the original's Message-ID names it.
    report = arf(
        "fbl@kabar.example.id", original_from="redaksi@kabar.example.id",
        recipient=address, original_id=message_id,
    )  # fmt: skip
    done = processor(config, store).messages([report], "file")
    assert [r.kind for r in done[0].results] == ["complaint"]
    assert status_of(store, address) == "complained"
    assert status_of(store, address, "sore") == "unsubscribed"
    assert delivery_state(store, delivery_id) == "complained"
    assert Suppressions(store.engine).is_suppressed(address)
    # Only an admin brings them back: a subscription or import is refused meanwhile.
    Subscribers(store.engine).purge(sore.id)
    with pytest.raises(SuppressedAddress):
        Subscribers(store.engine).add("sore", address.upper())
    csv = Path(str(config.path)).with_name("again.csv")
    csv.write_text(f"email\n{address}\n")
    report_csv = Subscribers(store.engine).import_csv(csv, "sore")
    assert report_csv.imported == 0 and "suppression list" in report_csv.rejected[0]


def test_not_spam_feedback_is_no_complaint(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca004@example.com"
    _, _, to, message_id = by_address[address]
    report = arf(
        "fbl@kabar.example.id", original_from=to, recipient=address, original_id=message_id,
        feedback_type="not-spam",
    )  # fmt: skip
    processor(config, store).messages([report], "file")
    assert status_of(store, address) == "active"


def test_mailto_unsubscribe_counts_only_with_a_valid_token(sent: Sent) -> None:
    config, store, by_address = sent
    address = "pembaca005@example.com"
    subscriber_id = by_address[address][1]
    good = verp.address(UNSUBSCRIBE_PATTERN, verp.unsubscribe_token(SECRET.encode(), subscriber_id))
    bad = verp.address(UNSUBSCRIBE_PATTERN, verp.unsubscribe_token(b"forged", subscriber_id))
    done = processor(config, store).messages([unsubscribe_mail(bad)], "file")
    assert status_of(store, address) == "active" and not done[0].recognised
    processor(config, store).messages([unsubscribe_mail(good)], "file")
    assert status_of(store, address) == "unsubscribed"


def test_the_sent_message_carries_the_mailto_and_feedback_id(sent: Sent) -> None:
    import email as email_module

    config, _, _ = sent
    outbox = config.resolve(config.delivery.outbox)
    message = email_module.message_from_bytes(next((outbox / "new").iterdir()).read_bytes())
    listing = str(message["List-Unsubscribe"])
    https, mailto = [part.strip(" <>\r\n\t") for part in listing.split(",")]
    assert https.startswith("https://kabar.example.id/unsubscribe/")
    assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith(
        "@bounce.kabar.example.id?subject=unsubscribe"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"].endswith(":harian:pembaca:kabar")
    assert ":" not in message["Feedback-ID"].rsplit(":", 3)[0]  # the issue key's own ":" go


# --- mailboxes ------------------------------------------------------------------------------


def test_fetch_keeps_the_unrecognised_for_a_person_and_ignores_auto_replies(
    sent: Sent, write_config: WriteConfig, database_url: str, tmp_path: Path
) -> None:
    _, _, by_address = sent
    box = tmp_path / "Maildir"
    to = by_address["pembaca000@example.com"][2]
    mystery = b"From: a@example.org\r\nTo: x@kabar.example.id\r\nSubject: halo\r\n\r\nhalo\r\n"
    write_maildir(box, [dsn(to, "pembaca000@example.com", "5.1.1"), auto_reply(to), mystery])
    config = inbound_config(
        write_config, database_url=database_url, mailbox={"kind": "maildir", "path": str(box)}
    )
    result = CliRunner().invoke(cli, ["-c", str(config.path), "bounces", "fetch"])
    assert result.exit_code == 0, result.output
    assert "1 auto_reply, 1 hard, 1 unrecognised" in result.output
    assert len(list((box / "cur").iterdir())) == 2
    kept = list((box / ".kabar-unrecognised" / "new").iterdir())
    assert [path.read_bytes() for path in kept] == [mystery]  # never deleted, never changed
    listing = CliRunner().invoke(
        cli, ["-c", str(config.path), "bounces", "list", "--json", "--kind", "unrecognised"]
    )
    assert listing.exit_code == 0 and '"kind": "unrecognised"' in listing.output


def test_a_crash_after_the_commit_loses_nothing(
    sent: Sent, write_config: WriteConfig, database_url: str, tmp_path: Path
) -> None:
    _, store, by_address = sent
    box = tmp_path / "Maildir"
    messages = [dsn(by_address[a][2], a, "5.1.1") for a in sorted(by_address)[:3]]
    write_maildir(box, messages)
    config = inbound_config(
        write_config, database_url=database_url, mailbox={"kind": "maildir", "path": str(box)}
    )
    env = {**os.environ, "KABAR_SECRET": SECRET, "KABAR_CRASH_AT": "inbound_after_commit"}
    command = [sys.executable, "-m", "kabar", "-q", "-c", str(config.path), "bounces", "fetch"]
    crashed = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    assert len(list((box / "new").iterdir())) == 3  # committed, not yet moved
    del env["KABAR_CRASH_AT"]
    finished = subprocess.run([*command, "--json"], env=env, capture_output=True, timeout=60)
    assert finished.returncode == 0, finished.stderr.decode()
    assert b'"repeated": 3' in finished.stdout
    assert not list((box / "new").iterdir()) and len(list((box / "cur").iterdir())) == 3
    assert [status_of(store, a) for a in sorted(by_address)[:3]] == ["bounced"] * 3


# --- the suppression list and the breaker ---------------------------------------------------


def test_suppression_cli_and_the_audience_snapshot(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    config = inbound_config(write_config, database_url=database_url)
    prepare_store(config, store, 4)  # pembaca000..003@example.com
    blocklist = Path(str(config.path)).with_name("blocklist.txt")
    blocklist.write_text("email\npembaca000@example.com\n# a comment\nnot an address!\n")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["-c", str(config.path), "suppression", *args])
        return result.exit_code, result.output

    code, said = run("import", str(blocklist))
    assert code == 1 and f"{blocklist}: 1 added, 0 already there, 1 rejected" in said
    assert f"{blocklist}:4: not an address or a domain: 'not an address!'" in said
    assert run("add", "pembaca001@EXAMPLE.com")[0] == 0
    assert run("add", "@example.org")[0] == 0
    code, listing = run("list", "--json")
    assert code == 0 and listing.count("\n") == 3 and '"kind": "domain"' in listing
    assert run("add", "bukan domain")[0] == 2
    issue = send_now(config, store)
    assert issue is not None and issue.audience == 2  # 000 and 001 are not in it
    assert run("remove", "pembaca001@example.com") == (0, "removed: pembaca001@example.com\n")
    assert run("remove", "pembaca001@example.com")[0] == 1
    Subscribers(store.engine).add("pembaca", "baru@example.com")
    Suppressions(store.engine).add("example.com")
    with pytest.raises(SuppressedAddress):
        Subscribers(store.engine).add("pembaca", "lain@example.com")


def test_the_breaker_pauses_an_issue_whose_first_deliveries_bounce(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kabar.deliver import breaker

    monkeypatch.setenv("KABAR_SECRET", SECRET)
    config = inbound_config(write_config, database_url=database_url, policy={"breaker_minimum": 2})
    prepare_store(config, store, 20)
    ledger = Ledger(store.engine)
    issue = send_now(config, store, wait=False)
    assert issue is not None
    key = issue.key
    now = datetime.now(UTC)
    ledger.transition(key, ("sent", "sending"), "sending", now=now)  # still going out
    by_address = deliveries_by_address(store)
    first = [dsn(by_address[a][2], a, "5.1.1") for a in sorted(by_address)[:1]]
    processor(config, store).messages(first, "file")
    assert ledger.issue(key).state == "sending"  # type: ignore[union-attr]  # 1 of 20 is 5%
    two = [dsn(by_address[a][2], a, "5.1.1") for a in sorted(by_address)[1:2]]
    done = processor(config, store)
    done.messages(two, "file")
    paused = ledger.issue(key)
    assert paused is not None and paused.state == "paused", paused
    assert "2 of the first 20 deliveries bounced hard" in paused.detail
    assert done.tally.paused == [key]
    # Once resumed by an admin, it stays quiet.
    ledger.transition(key, "paused", "sending", now=now)
    more = [dsn(by_address[a][2], a, "5.1.1") for a in sorted(by_address)[2:4]]
    processor(config, store).messages(more, "file")
    assert ledger.issue(key).state == "sending"  # type: ignore[union-attr]
    assert breaker.hard_bounces_in_sample(store.engine, key, 1000) == (4, 20)


# --- hostile input ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_any_bytes_read_into_findings(data: bytes) -> None:
    reading = read(data, ADDRESSES)
    assert reading.message_id
    assert reading.findings  # always something, if only "unrecognised"


_FIELD = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(recipient=_FIELD, status=_FIELD, action=_FIELD, boundary_junk=_FIELD)
def test_mangled_reports_read_into_findings(
    recipient: str, status: str, action: str, boundary_junk: str
) -> None:
    to = verp.address(BOUNCE_PATTERN, verp.delivery_token(b"k", 3, "i", "s"))
    data = dsn(to, recipient or "x@example.net", status, action=action)
    data = data.replace(b"--RAA14128", b"--RAA14128" + boundary_junk.encode(), 2)
    reading = read(data, ADDRESSES)
    assert reading.findings
    assert all(f.kind != "unsubscribe" for f in reading.findings)  # never from a DSN


def test_a_message_no_reader_survives_is_kept_for_a_person(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kabar.inbound.process as process_module

    config, store, by_address = sent
    address = "pembaca000@example.com"
    good = dsn(by_address[address][2], address, "5.1.1")

    def fragile(data: bytes, addresses: Addresses) -> object:
        if b"poison" in data:
            raise ValueError("a reader's own bug")
        return read(data, addresses)

    monkeypatch.setattr(process_module, "read", fragile)
    done = processor(config, store).messages([b"Subject: poison\r\n\r\n", good], "file")
    assert [d.recognised for d in done] == [False, True]
    listed = CliRunner().invoke(
        cli, ["-c", str(config.path), "bounces", "list", "--json", "--kind", "unrecognised"]
    )
    assert "could not be read: ValueError: a reader's own bug" in listed.output
    assert status_of(store, address) == "bounced"
