"""Webhooks out: a real receiver on 127.0.0.1 that fails, times out and comes back; its
signatures checked with the standardwebhooks package (the reference verifier)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks
from click.testing import CliRunner
from sqlalchemy import select

from kabar.cli import cli
from kabar.config import Config
from kabar.hooks.deliver import WebhookSender, sign
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.store.tables import webhook_deliveries
from kabar.subscribers import Subscribers

from ..support.ops import ops_config, sample
from ..support.project import WriteConfig
from ..support.serving import free_port

SECRET = "whsec_" + base64.b64encode(b"kunci-rahasia-webhook-uji-32b!!!").decode()


@dataclass
class Receiver:
    """An HTTP endpoint whose answer the test chooses: ok, fail (500) or slow."""

    port: int
    mode: str = "ok"
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.seen.append((receiver.mode, dict(self.headers), body))
                if receiver.mode == "slow":
                    time.sleep(1.5)
                status = 204 if receiver.mode == "ok" else 500
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    found.start()
    yield found
    found.stop()


@pytest.fixture
def config(
    write_config: WriteConfig, database_url: str, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:  # fmt: skip
    monkeypatch.setenv("KABAR_HOOK_SECRET", SECRET)
    monkeypatch.setenv("KABAR_SECRET", "rahasia")
    endpoint = {
        "id": "crm", "url": f"http://127.0.0.1:{receiver.port}/kabar",
        "secret_env": "KABAR_HOOK_SECRET", "timeout": "500ms",
        "events": ["subscriber.created", "subscriber.unsubscribed", "issue.finished"],
    }  # fmt: skip
    return ops_config(
        write_config, database_url,
        webhooks={"endpoints": [endpoint], "retry_backoff": "1ms", "retry_backoff_max": "1ms"},
    )  # fmt: skip


def deliver(config: Config, store: Store, *, at: datetime | None = None) -> Any:
    """One pass of a fresh sender (a new `kabar run` each time: only the ledger carries on)."""

    async def run() -> Any:
        sender = WebhookSender(config, store.engine, clock=(lambda: at) if at else None)
        try:
            return await sender.run_once()
        finally:
            await sender.close()

    time.sleep(0.01)  # past the retry backoff
    return asyncio.run(run())


def verified(seen: tuple[str, dict[str, str], bytes]) -> Any:
    _, headers, body = seen
    lowered = {key.lower(): value for key, value in headers.items()}
    return standardwebhooks.Webhook(SECRET).verify(body, lowered)


def test_an_event_survives_failures_timeouts_and_restarts_of_both_sides(
    config: Config, store: Store, receiver: Receiver
) -> None:
    ani, _ = Subscribers(store.engine).add("pembaca", "ani@example.com", origin="api")
    receiver.mode = "fail"
    assert deliver(config, store).failed == 1
    receiver.mode = "slow"
    assert deliver(config, store).failed == 1  # no answer within 500ms
    receiver.stop()  # the receiver is down
    assert deliver(config, store).failed == 1
    receiver.start()  # and back, on the same port
    receiver.mode = "ok"
    report = deliver(config, store)
    assert report.sent == 1 and report.failed == 0
    assert deliver(config, store).sent == 0  # delivered once, not again
    ids = {headers["webhook-id"] for _, headers, _ in receiver.seen}
    assert len(ids) == 1  # every attempt under the same id: receivers can drop repeats
    payload = verified(receiver.seen[-1])
    assert payload["type"] == "subscriber.created"
    assert payload["data"] == {"id": ani.id, "list": "pembaca", "email": "ani@example.com",
                               "status": "active", "origin": "api"}  # fmt: skip
    with store.engine.connect() as connection:
        row = connection.execute(select(webhook_deliveries)).one()
    assert (row.state, row.attempts) == ("sent", 4)
    assert sample("kabar_webhook_deliveries_total", endpoint="crm", result="sent") >= 1


def test_the_signature_is_standard_webhooks_and_a_forgery_fails(
    config: Config, store: Store, receiver: Receiver
) -> None:
    Subscribers(store.engine).add("pembaca", "budi@example.com")
    deliver(config, store)
    mode, headers, body = receiver.seen[-1]
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["webhook-signature"] == sign(
        SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body
    )
    verified(receiver.seen[-1])
    forged = body.replace(b"budi@", b"eve@")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verified((mode, headers, forged))


def test_only_the_events_an_endpoint_asks_for_are_sent(
    config: Config, store: Store, receiver: Receiver
) -> None:
    subscribers = Subscribers(store.engine)
    citra, _ = subscribers.add("pembaca", "citra@example.com", status="pending")
    subscribers.set_status(citra.id, "active", expected=["pending"])  # confirmed: not asked for
    subscribers.set_status(citra.id, "unsubscribed")
    now = datetime.now(UTC)
    ledger = Ledger(store.engine)
    ledger.create_issue("harian:pembaca:x", digest_id="harian", list_id="pembaca",
                        period="x", issue_time=now, now=now, state="materialised")  # fmt: skip
    ledger.transition("harian:pembaca:x", "materialised", "sending", now=now)
    ledger.finish("harian:pembaca:x", now=now)
    deliver(config, store)
    kinds = [json.loads(body)["type"] for _, _, body in receiver.seen]
    assert kinds == ["subscriber.created", "subscriber.unsubscribed", "issue.finished"]
    finished = json.loads(receiver.seen[-1][2])["data"]
    assert finished["key"] == "harian:pembaca:x" and finished["state"] == "sent"
    assert finished["counts"]["audience"] == 0


def test_an_endpoint_failing_for_a_day_is_disabled_reported_and_can_come_back(
    config: Config, store: Store, receiver: Receiver
) -> None:
    Subscribers(store.engine).add("pembaca", "dewi@example.com")
    receiver.mode = "fail"
    start = datetime.now(UTC)
    assert deliver(config, store, at=start).failed == 1
    assert deliver(config, store, at=start + timedelta(hours=23)).disabled == []
    Subscribers(store.engine).add("pembaca", "eko@example.com")  # comes in meanwhile
    report = deliver(config, store, at=start + timedelta(days=1, minutes=1))
    assert report.disabled == ["crm"]
    assert sample("kabar_webhook_endpoint_disabled", endpoint="crm") == 1
    tried = len(receiver.seen)
    assert deliver(config, store, at=start + timedelta(days=2)).failed == 0
    assert len(receiver.seen) == tried  # disabled: nothing is tried
    runner = CliRunner()
    listed = runner.invoke(cli, ["-c", str(config.path), "webhooks", "--json"])
    status = json.loads(listed.stdout)
    assert status["disabled"] and status["held"] == 2 and status["last_error"] == "HTTP 500"
    receiver.mode = "ok"
    enabled = runner.invoke(cli, ["-c", str(config.path), "webhooks", "--enable", "crm"])
    assert enabled.exit_code == 0 and "2 held events" in enabled.output
    assert deliver(config, store).sent == 2
    emails = {verified(seen)["data"]["email"] for seen in receiver.seen if seen[0] == "ok"}
    assert emails == {"dewi@example.com", "eko@example.com"}


def test_a_missing_secret_fails_only_that_endpoint_and_keeps_the_event(
    config: Config, store: Store, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    Subscribers(store.engine).add("pembaca", "fajar@example.com")
    monkeypatch.delenv("KABAR_HOOK_SECRET")
    report = deliver(config, store)
    assert report.failed == 1 and receiver.seen == []
    with store.engine.connect() as connection:
        error = connection.execute(select(webhook_deliveries.c.last_error)).scalar_one()
    assert "KABAR_HOOK_SECRET" in error and SECRET not in error
    monkeypatch.setenv("KABAR_HOOK_SECRET", SECRET)
    assert deliver(config, store).sent == 1


def test_kabar_run_once_sends_the_due_events(
    config: Config, store: Store, receiver: Receiver
) -> None:
    Subscribers(store.engine).add("pembaca", "gita@example.com")
    result = CliRunner().invoke(cli, ["-c", str(config.path), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert [verified(seen)["data"]["email"] for seen in receiver.seen] == ["gita@example.com"]
