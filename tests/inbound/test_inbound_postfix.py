"""kabar sends an issue through a real Postfix to an accepted, a rejected and a deferred
recipient; Postfix writes real DSNs to the deliveries' VERP addresses; `kabar bounces
fetch` reads them from the Maildir (and from Dovecot over IMAP) into the right statuses."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kabar.cli import cli
from kabar.config import Config
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.store.tables import deliveries, inbound_events
from kabar.subscribers import Subscribers

from ..support.delivery_setup import SECRET, send_now
from ..support.inbound import inbound_config
from ..support.mailservers import (
    BOUNCE_DOMAIN,
    RECIPIENT_DOMAIN,
    Dovecot,
    Postfix,
    parse,
    wait_for_mail,
)
from ..support.project import SEED_AS_OF, WriteConfig


def _send_issue(config: Config, store: Store, postfix: Postfix) -> dict[str, str]:
    """Send the issue to ok/reject/defer recipients; their subscriber ids by local part.
    Waits for Postfix's two DSNs to land in the Maildir."""
    from kabar.ingest import ingest_source

    ingest_source(config, store, config.source("seeds"), as_of=SEED_AS_OF)
    people = Subscribers(store.engine)
    accepted = f"ok.{uuid.uuid4().hex[:8]}"
    ids = {}
    for local in (accepted, "reject", "defer"):
        subscriber, _ = people.add("pembaca", f"{local}@{RECIPIENT_DOMAIN}")
        ids[local.partition(".")[0]] = subscriber.id
    issue = send_now(config, store)
    assert issue is not None and issue.state == "sent"  # Postfix took all three
    senders = _envelope_senders(store)
    assert all(sender.endswith(f"@{BOUNCE_DOMAIN}") for sender in senders.values())
    wait_for_mail(postfix.maildir, lambda m: m["To"] in senders.values(), 2)
    return ids


def _envelope_senders(store: Store) -> dict[str, str]:
    """What Postfix logged as each delivery's sender is hard to read; the VERP address is
    recomputed from the ledger exactly as the sender made it."""
    from kabar import verp

    with store.engine.connect() as connection:
        rows = connection.execute(
            select(deliveries.c.id, deliveries.c.issue_key, deliveries.c.subscriber_id)
        ).all()
    return {
        row.subscriber_id: verp.address(
            "bounces+{token}@" + BOUNCE_DOMAIN,
            verp.delivery_token(SECRET.encode(), row.id, row.issue_key, row.subscriber_id),
        )
        for row in rows
    }


def _addressee(path: Path) -> str:
    return str(parse(path.read_bytes())["To"])


def _statuses(store: Store, ids: dict[str, str]) -> dict[str, str]:
    people = Subscribers(store.engine)
    return {name: people.get(sid).status for name, sid in ids.items()}  # type: ignore[union-attr]


def _run(config: Config, *args: str) -> str:
    result = CliRunner().invoke(cli, ["-c", str(config.path), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


@pytest.mark.usefixtures("secret")
def test_fetch_from_the_maildir_turns_postfix_dsns_into_statuses(
    postfix: Postfix, write_config: WriteConfig, database_url: str, store: Store, tmp_path: Path
) -> None:
    config = inbound_config(
        write_config,
        database_url=database_url,
        port=postfix.port,
        mailbox={"kind": "maildir", "path": str(postfix.maildir)},
    )
    ids = _send_issue(config, store, postfix)
    assert _statuses(store, ids) == {"ok": "active", "reject": "active", "defer": "active"}

    output = _run(config, "bounces", "fetch", "--json")
    assert '"hard": 1' in output and '"soft": 1' in output, output
    assert _statuses(store, ids) == {"ok": "active", "reject": "bounced", "defer": "active"}
    ledger = Ledger(store.engine)
    issue = ledger.issues()[0]
    counts = ledger.counts([issue.key])[issue.key]
    assert (counts.audience, counts.sent, counts.bounced) == (3, 2, 1)
    with store.engine.connect() as connection:
        events = {
            row.subscriber_id: (row.kind, row.status)
            for row in connection.execute(select(inbound_events))
            if row.subscriber_id in ids.values()
        }
    assert events == {ids["reject"]: ("hard", "5.1.1"), ids["defer"]: ("soft", "4.2.0")}

    # Read, commit, then move: ours are in cur/ and seen; the same DSNs read again (as a
    # crash before the move would) change nothing.
    senders = set(_envelope_senders(store).values())
    ours = [p for p in (postfix.maildir / "cur").iterdir() if _addressee(p) in senders]
    assert len(ours) == 2 and all(p.name.endswith(":2,S") for p in ours)
    assert not [p for p in (postfix.maildir / "new").iterdir() if _addressee(p) in senders]
    copy = tmp_path / "again"
    shutil.copytree(postfix.maildir, copy, ignore=shutil.ignore_patterns(".kabar-unrecognised"))
    before = _statuses(store, ids)
    again = _run(config, "bounces", "process", str(copy), "--json")
    assert '"repeated": ' in again and '"repeated": 0' not in again
    assert _statuses(store, ids) == before
    assert ledger.counts([issue.key])[issue.key].bounced == 1
    status = _run(config, "status", "--json")
    assert '"bounced": 1' in status and '"complained": 0' in status


@pytest.mark.usefixtures("secret")
def test_fetch_over_imap_from_dovecot(
    postfix: Postfix,
    dovecot: Dovecot,
    write_config: WriteConfig,
    database_url: str,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KABAR_BOUNCE_PASSWORD", dovecot.password)
    config = inbound_config(
        write_config,
        database_url=database_url,
        port=postfix.port,
        mailbox={
            "kind": "imap",
            "host": "127.0.0.1",
            "port": dovecot.port,
            "username": dovecot.user,
            "password_env": "KABAR_BOUNCE_PASSWORD",
            "ca_file": str(dovecot.cafile),
        },
    )
    ids = _send_issue(config, store, postfix)
    output = _run(config, "bounces", "fetch", "--json")
    assert '"hard": 1' in output and '"soft": 1' in output, output
    assert _statuses(store, ids) == {"ok": "active", "reject": "bounced", "defer": "active"}
    # Moved to the done folder once committed: a second fetch finds nothing of ours.
    second = _run(config, "bounces", "fetch", "--json")
    assert '"hard"' not in second and '"soft"' not in second, second
