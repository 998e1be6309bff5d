"""The issue state machine and the delivery ledger, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from kabar.ledger import Ledger, Outcome
from kabar.store import Store
from kabar.subscribers import Subscribers

NOW = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
KEY = "harian:pembaca:2026-11-27"
LEASE = timedelta(seconds=30)


def issue_with(store: Store, audience: int, *, chunk_size: int = 10) -> Ledger:
    subscribers = Subscribers(store.engine)
    for n in range(audience):
        subscribers.add("pembaca", f"s{n}@example.com", now=NOW)
    subscribers.add("pembaca", "waiting@example.com", status="pending", now=NOW)
    ledger = Ledger(store.engine)
    ledger.create_issue(
        KEY, digest_id="harian", list_id="pembaca", period="2026-11-27", issue_time=NOW, now=NOW
    )
    assert ledger.transition(KEY, "planned", "rendered", now=NOW, prepared={"subject": "s"})
    assert ledger.materialise(
        KEY, "pembaca", chunk_size=chunk_size, message_id=lambda sid: f"<{sid}@x>", now=NOW
    )
    assert ledger.transition(KEY, "materialised", "sending", now=NOW)
    return ledger


def test_one_issue_per_key(store: Store) -> None:
    ledger = Ledger(store.engine)
    made = [
        ledger.create_issue(
            KEY,
            digest_id="harian",
            list_id="pembaca",
            period="2026-11-27",
            issue_time=NOW + timedelta(hours=n),
            now=NOW,
        )
        for n in range(3)
    ]
    assert made == [True, False, False]
    issue = ledger.issue(KEY)
    assert issue is not None and issue.issue_time == NOW and issue.state == "planned"
    assert len(ledger.issues()) == 1


def test_transitions_are_compare_and_set(store: Store) -> None:
    ledger = Ledger(store.engine)
    ledger.create_issue(
        KEY, digest_id="harian", list_id="pembaca", period="p", issue_time=NOW, now=NOW
    )
    assert not ledger.transition(KEY, "rendered", "materialised", now=NOW)
    assert ledger.transition(KEY, "planned", "rendered", now=NOW, prepared={"a": 1})
    assert not ledger.transition(KEY, "planned", "rendered", now=NOW, prepared={"a": 2})
    issue = ledger.issue(KEY)
    assert issue is not None and issue.state == "rendered" and issue.prepared == {"a": 1}


def test_the_audience_is_a_snapshot_of_active_subscribers_in_chunks(store: Store) -> None:
    ledger = issue_with(store, 25, chunk_size=10)
    issue = ledger.issue(KEY)
    assert issue is not None and (issue.audience, issue.chunks) == (25, 3)
    Subscribers(store.engine).add("pembaca", "late@example.com", now=NOW)
    assert not ledger.materialise(
        KEY, "pembaca", chunk_size=10, message_id=lambda sid: sid, now=NOW
    )  # done once: a second sender cannot add rows
    assert ledger.counts([KEY])[KEY].audience == 25
    assert ledger.chunks_with_work(KEY, now=NOW) == [0, 1, 2]


def test_claims_hold_until_their_lease_runs_out(store: Store) -> None:
    ledger = issue_with(store, 10)
    first = ledger.claim(KEY, 0, owner="a", limit=4, lease=LEASE, now=NOW)
    second = ledger.claim(KEY, 0, owner="b", limit=100, lease=LEASE, now=NOW)
    assert len(first) == 4 and len(second) == 6
    assert not {c.delivery_id for c in first} & {c.delivery_id for c in second}
    assert ledger.claim(KEY, 0, owner="c", limit=100, lease=LEASE, now=NOW) == []
    later = NOW + LEASE + timedelta(seconds=1)
    taken_over = ledger.claim(KEY, 0, owner="c", limit=100, lease=LEASE, now=later)
    assert len(taken_over) == 10
    assert {c.message_id for c in taken_over} == {c.message_id for c in first + second}
    # a's result comes too late: c holds those rows now, so it is not written
    assert (
        ledger.record([Outcome(first[0].delivery_id, first[0].claim, "sent", 250)], now=later) == 0
    )
    assert ledger.counts([KEY])[KEY].sent == 0


def test_a_renewed_lease_is_not_taken_over(store: Store) -> None:
    ledger = issue_with(store, 3)
    held = ledger.claim(KEY, 0, owner="a", limit=10, lease=LEASE, now=NOW)
    ledger.renew([held[0].claim], lease_until=NOW + 3 * LEASE)
    assert ledger.claim(KEY, 0, owner="b", limit=10, lease=LEASE, now=NOW + 2 * LEASE) == []


def test_concurrent_claimers_never_share_a_delivery(store: Store) -> None:
    ledger = issue_with(store, 60, chunk_size=60)
    taken: list[list[int]] = [[] for _ in range(4)]

    def claimer(number: int) -> None:
        while batch := ledger.claim(KEY, 0, owner=str(number), limit=3, lease=LEASE, now=NOW):
            taken[number].extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [delivery for batch in taken for delivery in batch]
    assert len(every) == 60 and len(set(every)) == 60


def test_a_result_writer_holds_its_connection_and_replaces_one_that_died(store: Store) -> None:
    """The sending loop's writer keeps one connection between commits; when that one has
    died meanwhile (the database restarted), the next commit goes through on a new one."""
    ledger = issue_with(store, 3)
    a, b, c = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    with ledger.result_writer() as writer:
        assert writer.record([Outcome(a.delivery_id, a.claim, "sent", 250)], now=NOW) == 1
        assert store.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        held = writer._connection
        assert held is not None and held.dbapi_connection is not None
        held.dbapi_connection.close()
        later = [
            Outcome(b.delivery_id, b.claim, "sent", 250),
            Outcome(c.delivery_id, c.claim, "failed", 552),
        ]
        assert writer.record(later, now=NOW) == 2
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    counts = ledger.counts([KEY])[KEY]
    assert (counts.sent, counts.failed, counts.claimed) == (2, 1, 0)


def test_results_record_every_reply_code_and_bounces(store: Store) -> None:
    ledger = issue_with(store, 3)
    a, b, c = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    ledger.record(
        [
            Outcome(a.delivery_id, a.claim, "retry_wait", 451, "4.3.0 later", NOW),
            Outcome(
                b.delivery_id,
                b.claim,
                "bounced",
                550,
                "5.1.1 unknown",
                subscriber_id=b.subscriber_id,
            ),
            Outcome(c.delivery_id, c.claim, "sent", 250, "2.0.0 ok"),
        ],
        now=NOW,
    )
    [again] = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    assert again.delivery_id == a.delivery_id and again.attempts == 1
    ledger.record([Outcome(a.delivery_id, again.claim, "sent", 250, "2.0.0 ok")], now=NOW)
    with store.engine.connect() as connection:
        from sqlalchemy import select

        from kabar.store.tables import deliveries

        rows = {
            row.id: row.codes
            for row in connection.execute(select(deliveries.c.id, deliveries.c.codes))
        }
    assert rows[a.delivery_id] == "451 250"
    assert rows[b.delivery_id] == "550"
    bounced = Subscribers(store.engine).get(b.subscriber_id)
    assert bounced is not None and bounced.status == "bounced"
    counts = ledger.counts([KEY])[KEY]
    assert (counts.sent, counts.bounced, counts.pending) == (2, 1, 0)
    assert ledger.finish(KEY, now=NOW) == "partial"


def test_released_claims_go_back_untried(store: Store) -> None:
    ledger = issue_with(store, 4)
    claimed = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    assert ledger.release(claimed[2:]) == 2
    assert ledger.counts([KEY])[KEY].claimed == 2
    again = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    assert {c.delivery_id for c in again} == {c.delivery_id for c in claimed[2:]}
    assert all(c.attempts == 0 for c in again)


def test_finish_waits_for_every_delivery_then_decides(store: Store) -> None:
    ledger = issue_with(store, 2)
    a, b = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    ledger.record([Outcome(a.delivery_id, a.claim, "sent", 250)], now=NOW)
    assert ledger.finish(KEY, now=NOW) is None
    ledger.record([Outcome(b.delivery_id, b.claim, "failed", 552, "5.3.4 too big")], now=NOW)
    assert ledger.finish(KEY, now=NOW) == "partial"
    assert ledger.reset_failed(KEY, now=NOW) == 1
    issue = ledger.issue(KEY)
    assert issue is not None and issue.state == "sending"
    [retry] = ledger.claim(KEY, 0, owner="me", limit=10, lease=LEASE, now=NOW)
    assert retry.message_id == b.message_id  # the same identity on a resend
    ledger.record([Outcome(retry.delivery_id, retry.claim, "sent", 250)], now=NOW)
    assert ledger.finish(KEY, now=NOW) == "sent"


def test_counts_add_up_to_the_audience(store: Store) -> None:
    ledger = issue_with(store, 12, chunk_size=5)
    claimed = ledger.claim(KEY, 1, owner="me", limit=5, lease=LEASE, now=NOW)
    states = ["sent", "retry_wait", "failed", "bounced", "skipped"]
    ledger.record(
        [Outcome(c.delivery_id, c.claim, s, 250) for c, s in zip(claimed, states, strict=True)],  # type: ignore[arg-type]
        now=NOW,
    )
    ledger.claim(KEY, 2, owner="me", limit=1, lease=LEASE, now=NOW)
    counts = ledger.counts([KEY])[KEY]
    parts = counts.to_dict()
    assert parts["audience"] == 12
    assert sum(v for k, v in parts.items() if k != "audience") == 12
    assert (counts.sent, counts.deferred, counts.failed, counts.bounced, counts.skipped) == (
        1, 1, 1, 1, 1,
    )  # fmt: skip
    assert counts.pending == 7 and counts.claimed == 1


@pytest.mark.parametrize("holder_lives", [True, False])
def test_one_holder_per_named_lease(store: Store, holder_lives: bool) -> None:
    ledger = Ledger(store.engine)
    ttl = timedelta(seconds=60)
    assert ledger.acquire_lease("scheduler", "a", ttl=ttl, now=NOW)
    later = NOW + (timedelta(seconds=10) if holder_lives else timedelta(seconds=61))
    assert ledger.acquire_lease("scheduler", "b", ttl=ttl, now=later) is not holder_lives
    holder = ledger.lease_holder("scheduler")
    assert holder is not None and holder[0] == ("a" if holder_lives else "b")
    ledger.release_lease("scheduler", holder[0])
    assert ledger.acquire_lease("scheduler", "c", ttl=ttl, now=later)


def test_the_migration_creates_the_tables_as_defined(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kabar.store.tables import metadata

    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
