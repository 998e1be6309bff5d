"""Crash safety: a `kabar send` process killed with SIGKILL at each named point, then run
again, against an SMTP sink that records every Message-ID. Also SIGTERM, which drains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from kabar.config import Config
from kabar.ledger import Ledger
from kabar.model import message_id
from kabar.store import Store
from kabar.store.tables import deliveries, subscribers

from ..support.delivery_setup import SECRET, delivery_config, prepare_store
from ..support.delivery_sink import Sink, running
from ..support.project import WriteConfig

AUDIENCE = 12
CONNECTIONS = 2


def kabar_send(config: Config, *, crash_at: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KABAR_SECRET": SECRET}
    if crash_at:
        env["KABAR_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "kabar", "-q", "-c", str(config.path), "send", "harian", "--now"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> int:
    _, stderr = process.communicate(timeout=60)
    if process.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"kabar send exited {process.returncode}: {stderr.decode()}")
    return process.returncode


def ledger_ids(config: Config) -> dict[str, str]:
    """Each subscriber's address and the Message-ID the ledger holds for them."""
    with Store.open(config.database_url) as store, store.engine.connect() as connection:
        rows = connection.execute(
            select(subscribers.c.email, deliveries.c.message_id).join(
                deliveries, deliveries.c.subscriber_id == subscribers.c.id
            )
        ).all()
    return {row.email: row.message_id for row in rows}


@pytest.mark.parametrize(
    "crash_at",
    ["mid_render", "after_claim", "after_250_before_commit:5", "between_chunks"],
)
def test_killed_at_each_point_then_restarted_everyone_gets_it_once(
    write_config: WriteConfig, database_url: str, crash_at: str
) -> None:
    sink = Sink()
    with running(sink) as server:
        config = delivery_config(
            write_config, port=server.port, database_url=database_url, lease="1s",
            smtp={"connections": CONNECTIONS},
        )  # fmt: skip
        with Store.open(config.database_url) as store:
            emails = prepare_store(config, store, AUDIENCE)
        assert finish(kabar_send(config, crash_at=crash_at)) == -signal.SIGKILL
        received_before = len(sink.received)
        assert finish(kabar_send(config)) == 0

    received = sink.by_recipient()
    assert sorted(received) == emails  # everyone has it
    assert sink.duplicates() <= CONNECTIONS
    if crash_at in ("mid_render", "after_claim"):
        assert received_before == 0 and sink.duplicates() == 0
    if crash_at.startswith("after_250"):  # the one sent but not recorded went out again
        assert received_before >= 5 and sink.duplicates() >= 1
    # no old delivery went out under a new Message-ID
    with Store.open(config.database_url) as store:
        [issue] = Ledger(store.engine).issues()
        counts = Ledger(store.engine).counts([issue.key])[issue.key]
    expected = ledger_ids(config)
    for email, ids in received.items():
        assert set(ids) == {expected[email]}
    sid_by_email = _subscriber_ids(config)
    assert all(
        expected[email] == message_id(issue.key, sid_by_email[email], "kabar.example.id")
        for email in emails
    )
    assert (issue.state, counts.sent, counts.pending) == ("sent", AUDIENCE, 0)


def _subscriber_ids(config: Config) -> dict[str, str]:
    with Store.open(config.database_url) as store, store.engine.connect() as connection:
        return {row.email: row.id for row in connection.execute(select(subscribers))}


def test_sigterm_drains_in_flight_sends_and_leaves_nothing_claimed(
    write_config: WriteConfig, database_url: str
) -> None:
    # every DATA takes 0.4 s, so the stop arrives with sends in flight
    sink = Sink(faults={f"pembaca{n:03d}@example.com": ["stall"] for n in range(AUDIENCE)})
    sink.stall = 0.4
    with running(sink) as server:
        config = delivery_config(
            write_config, port=server.port, database_url=database_url,
            smtp={"connections": CONNECTIONS, "timeout": "5s"},
        )  # fmt: skip
        with Store.open(config.database_url) as store:
            emails = prepare_store(config, store, AUDIENCE)
        process = kabar_send(config)
        deadline = time.monotonic() + 30
        while len(sink.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 1, stderr.decode()
        assert b"SIGTERM" in stderr
        with Store.open(config.database_url) as store:
            [issue] = Ledger(store.engine).issues()
            counts = Ledger(store.engine).counts([issue.key])[issue.key]
        assert counts.claimed == 0
        assert counts.sent == len(sink.received) < AUDIENCE  # each send in flight finished
        assert counts.pending == AUDIENCE - counts.sent

        assert finish(kabar_send(config)) == 0  # the same command resumes the same issue
    assert sorted(sink.by_recipient()) == emails
    assert sink.duplicates() == 0


def test_the_outbox_never_duplicates_a_resent_message(
    write_config: WriteConfig, project: Path
) -> None:
    config = delivery_config(write_config, lease="1s", chunk_size=3)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 7)
    assert finish(kabar_send(config, crash_at="after_250_before_commit:4")) == -signal.SIGKILL
    assert finish(kabar_send(config)) == 0
    files = list((project / "outbox" / "new").iterdir())
    assert len(files) == 7
