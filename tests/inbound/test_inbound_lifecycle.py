"""Who can undo what comes back: only the person lifts a bounce (by confirming again); a
complaint needs an admin. And the two places kabar acts on its own: `kabar run` reading
the bounce mailbox, and the breaker pausing an issue whose 5xx replies pile up."""

from __future__ import annotations

import email
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from kabar.cli import cli
from kabar.config import Config
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.subscribers import Subscribers
from kabar.web.subscribe import routes

from ..support.asgi import AsgiClient
from ..support.delivery_setup import SECRET, prepare_store, send_now
from ..support.delivery_sink import Sink, running
from ..support.inbound import (
    arf,
    deliveries_by_address,
    dsn,
    inbound_config,
    processor,
    status_of,
    write_maildir,
)
from ..support.project import WriteConfig


def _confirmation_paths(outbox: Path) -> list[str]:
    paths = []
    for mail in sorted((outbox / "new").iterdir()):
        message = email.message_from_bytes(mail.read_bytes())
        plain = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        body = plain.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else ""
        links = [line for line in text.splitlines() if "/subscribe/confirm/" in line]
        paths += [urlsplit(link.strip()).path for link in links[:1]]
    return paths


def test_only_the_person_lifts_a_bounce_and_only_an_admin_a_complaint(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    config = inbound_config(write_config, database_url=database_url)
    prepare_store(config, store, 2)
    send_now(config, store)
    by_address = deliveries_by_address(store)
    bounced, complained = "pembaca000@example.com", "pembaca001@example.com"
    _, _, _, message_id = by_address[complained]
    processor(config, store).messages(
        [
            dsn(by_address[bounced][2], bounced, "5.1.1"),
            arf("fbl@kabar.example.id", original_from="x@kabar.example.id",
                recipient=complained, original_id=message_id),
        ],
        "file",
    )  # fmt: skip
    assert (status_of(store, bounced), status_of(store, complained)) == ("bounced", "complained")
    outbox = config.resolve(config.delivery.outbox)
    before = len(_confirmation_paths(outbox))
    client = AsgiClient(Starlette(routes=routes(config, store)))

    # The complained address gets the usual answer, and no mail.
    answer = client.post("/subscribe", data={"email": complained, "list": "pembaca"})
    assert answer.status_code == 200
    assert len(_confirmation_paths(outbox)) == before
    assert status_of(store, complained) == "complained"

    # The bounced one is mailed a link; only the link brings it back.
    assert client.post("/subscribe", data={"email": bounced, "list": "pembaca"}).status_code == 200
    assert status_of(store, bounced) == "pending"
    [link] = _confirmation_paths(outbox)[before:]
    assert client.post(link, data={"confirm": "yes"}).status_code == 200
    assert status_of(store, bounced) == "active"

    # The admin lifts the suppression; then the person can come back the same way.
    result = CliRunner().invoke(cli, ["-c", str(config.path), "suppression", "remove", complained])
    assert result.exit_code == 0, result.output
    client.post("/subscribe", data={"email": complained, "list": "pembaca"})
    assert status_of(store, complained) == "pending"


def test_kabar_run_once_reads_the_bounce_mailbox(
    write_config: WriteConfig,
    database_url: str,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    box = tmp_path / "bounces"
    config = inbound_config(
        write_config, database_url=database_url, mailbox={"kind": "maildir", "path": str(box)}
    )
    prepare_store(config, store, 2)
    send_now(config, store)
    by_address = deliveries_by_address(store)
    address = "pembaca000@example.com"
    write_maildir(box, [dsn(by_address[address][2], address, "5.1.1")])
    result = CliRunner().invoke(cli, ["-c", str(config.path), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert status_of(store, address) == "bounced"
    assert not list((box / "new").iterdir())


def test_the_breaker_pauses_a_send_whose_refusals_pile_up(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    emails = [f"pembaca{n:03d}@example.com" for n in range(40)]
    # A bad import: every fourth address is unknown at the receiving server.
    refused = {address: ["rcpt:550 5.1.1 no such user"] for address in emails[::4]}
    sink = Sink(faults=refused)  # type: ignore[arg-type]
    with running(sink) as controller:
        config: Config = inbound_config(
            write_config, database_url=database_url, port=controller.port,
            policy={"breaker_minimum": 3},
        )  # fmt: skip
        prepare_store(config, store, 40)
        issue = send_now(config, store)
    assert issue is not None and issue.state == "paused", issue
    assert "bounced hard" in issue.detail and "kabar send --resume" in issue.detail
    counts = Ledger(store.engine).counts([issue.key])[issue.key]
    assert counts.bounced >= 3 and counts.pending > 0  # it stopped before the end
    assert len(sink.received) < 40 - len(refused)
    assert Subscribers(store.engine).counts("pembaca")["bounced"] == counts.bounced
