"""Each SMTP fault lands in the right state, and `kabar status` matches what the sink got."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kabar.cli import cli
from kabar.ledger import Ledger
from kabar.model import message_id
from kabar.store import Store
from kabar.store.tables import deliveries, subscribers
from kabar.subscribers import Subscribers

from ..support.delivery_setup import SECRET, delivery_config, prepare_store, send_now
from ..support.delivery_sink import Sink, running
from ..support.project import WriteConfig

FAULTS: dict[str, list[str | None]] = {
    "greylist@example.com": ["rcpt:451 4.7.1 greylisted, try again later"],
    "closing@example.com": ["rcpt:421 4.3.2 closing connection"],
    "full@example.com": ["rcpt:452 4.2.2 mailbox full"] * 5,
    "gone@example.com": ["rcpt:550 5.1.1 no such user"],
    "drop@example.com": ["drop"],
    "stall@example.com": ["stall"],
}
# (state, every reply code the ledger recorded, copies at the sink)
EXPECTED = {
    "ok1@example.com": ("sent", "250", 1),
    "ok2@example.com": ("sent", "250", 1),
    "greylist@example.com": ("sent", "451 250", 1),
    "closing@example.com": ("sent", "421 250", 1),
    "full@example.com": ("failed", "452 452 452", 0),
    "gone@example.com": ("bounced", "550", 0),
    "drop@example.com": ("sent", "0 250", 2),  # it arrived, but the 250 never came back
    "stall@example.com": ("sent", "0 250", 2),  # as above: timed out, then sent again
}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


def status_json(config_path: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["-q", "-c", config_path, "status", "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_each_fault_lands_in_its_state_and_status_matches_the_sink(
    write_config: WriteConfig, database_url: str, secret: None
) -> None:
    sink = Sink(faults=FAULTS, stall=1.5)
    with running(sink) as server:
        config = delivery_config(
            write_config, port=server.port, database_url=database_url, smtp={"timeout": "500ms"}
        )
        with Store.open(config.database_url) as store:
            prepare_store(config, store, 0)
            for email in EXPECTED:
                Subscribers(store.engine).add("pembaca", email)
            issue = send_now(config, store)
            assert issue is not None and issue.state == "partial"
            with store.engine.connect() as connection:
                rows = connection.execute(
                    select(subscribers.c.email, subscribers.c.status, deliveries.c.state,
                           deliveries.c.codes, deliveries.c.message_id, deliveries.c.subscriber_id)
                    .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                ).all()  # fmt: skip
    received = sink.by_recipient()
    for row in rows:
        state, codes, copies = EXPECTED[row.email]
        assert (row.state, row.codes, len(received.get(row.email, []))) == (state, codes, copies)
        expected_id = message_id(issue.key, row.subscriber_id, "kabar.example.id")
        assert row.message_id == expected_id
        assert set(received.get(row.email, [])) <= {expected_id}  # a resend keeps its identity
    assert {row.email: row.status for row in rows}["gone@example.com"] == "bounced"

    [line] = status_json(str(config.path))
    assert line["issue"] == issue.key and line["state"] == "partial"
    assert line["sent"] == len(received) == 6  # distinct recipients the sink accepted
    assert (line["failed"], line["bounced"], line["deferred"], line["pending"]) == (1, 1, 0, 0)
    assert line["audience"] == len(EXPECTED)


def test_a_policy_refusal_pauses_the_issue_until_resumed(
    write_config: WriteConfig, database_url: str, secret: None
) -> None:
    sink = Sink(faults={"pembaca003@example.com": ["data:554 5.7.1 refused: sender not allowed"]})
    with running(sink) as server:
        config = delivery_config(
            write_config, port=server.port, database_url=database_url, smtp={"connections": 1}
        )
        with Store.open(config.database_url) as store:
            emails = prepare_store(config, store, 10)
            issue = send_now(config, store)
            assert issue is not None and issue.state == "paused"
            assert issue.detail.startswith("sender problem: 554 5.7.1")
            counts = Ledger(store.engine).counts([issue.key])[issue.key]
            # one connection: everything before the refusal went out, nothing after it
            assert counts.sent == len(sink.received) < 10
            assert counts.pending == 10 - counts.sent and counts.failed == counts.bounced == 0
            assert "pembaca003@example.com" not in sink.by_recipient()
            # the subscriber is not blamed for the sender's problem
            refused = Subscribers(store.engine).find("pembaca", "pembaca003@example.com")
            assert refused is not None and refused.status == "active"

        result = CliRunner().invoke(
            cli, ["-q", "-c", str(config.path), "send", "--resume", issue.key]
        )
        assert result.exit_code == 0, result.output
    assert sorted(sink.by_recipient()) == emails
    assert sink.duplicates() == 0
    [line] = status_json(str(config.path))
    assert (line["state"], line["sent"], line["pending"]) == ("sent", 10, 0)


def test_resend_failed_sends_again_under_the_same_message_id(
    write_config: WriteConfig, database_url: str, secret: None
) -> None:
    sink = Sink(faults={"pembaca001@example.com": ["rcpt:452 4.2.2 mailbox full"] * 3})
    with running(sink) as server:
        config = delivery_config(write_config, port=server.port, database_url=database_url)
        with Store.open(config.database_url) as store:
            prepare_store(config, store, 3)
            issue = send_now(config, store)
        assert issue is not None and issue.state == "partial"
        assert "pembaca001@example.com" not in sink.by_recipient()
        result = CliRunner().invoke(
            cli, ["-q", "-c", str(config.path), "send", "--resume", issue.key, "--resend-failed"]
        )
        assert result.exit_code == 0, result.output
    [resent] = sink.by_recipient()["pembaca001@example.com"]
    [line] = status_json(str(config.path))
    assert (line["state"], line["sent"], line["failed"]) == ("sent", 3, 0)
    with Store.open(config.database_url) as store, store.engine.connect() as connection:
        stored = connection.execute(
            select(deliveries.c.message_id, deliveries.c.codes)
            .join(subscribers, deliveries.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.email == "pembaca001@example.com")
        ).one()
    assert stored.message_id == resent
    assert stored.codes == "452 452 452 250"
