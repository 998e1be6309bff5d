"""Metrics and webhook events from the places that already exist: a real send over SMTP
(aiosmtpd on 127.0.0.1) counts its replies and latency, and records issue.started,
issue.finished and subscriber.bounced with the changes they tell of."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kabar.store import Store
from kabar.store.tables import webhook_events
from kabar.subscribers import Subscribers

from ..support.delivery_setup import SECRET, delivery_config, prepare_store, send_now
from ..support.delivery_sink import Sink, running
from ..support.ops import sample
from ..support.project import WriteConfig


def test_a_send_is_counted_by_reply_class_and_tells_its_events(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    sink = Sink(faults={"pembaca001@example.com": ["rcpt:550 5.1.1 no such user"]})
    with running(sink) as controller:
        config = delivery_config(write_config, port=controller.port, database_url=database_url)
        emails = prepare_store(config, store, 4)
        before = {
            "sent": sample("kabar_messages_total", result="sent", reply_class="2xx"),
            "bounced": sample("kabar_messages_total", result="bounced", reply_class="5xx"),
            "latency": sample("kabar_send_seconds_count"),
            "bounces": sample("kabar_bounces_total", list="pembaca"),
        }
        issue = send_now(config, store)
    assert issue is not None and issue.state == "partial"
    assert sample("kabar_messages_total", result="sent", reply_class="2xx") == before["sent"] + 3
    assert sample("kabar_messages_total", result="bounced", reply_class="5xx") == (
        before["bounced"] + 1
    )
    assert sample("kabar_send_seconds_count") == before["latency"] + 4
    assert sample("kabar_bounces_total", list="pembaca") == before["bounces"] + 1
    with store.engine.connect() as connection:
        told = [
            (kind, json.loads(payload)["data"])
            for kind, payload in connection.execute(
                select(webhook_events.c.type, webhook_events.c.payload)
            )
        ]
    kinds = [kind for kind, _ in told]
    assert kinds.count("subscriber.created") == 4
    assert kinds.count("issue.started") == 1 and kinds.count("issue.finished") == 1
    bounced = [data for kind, data in told if kind == "subscriber.bounced"]
    assert [data["email"] for data in bounced] == [emails[1]]
    finished = next(data for kind, data in told if kind == "issue.finished")
    assert finished["state"] == "partial" and finished["counts"]["sent"] == 3
    assert finished["counts"]["bounced"] == 1
    bounced_subscriber = Subscribers(store.engine).find("pembaca", emails[1])
    assert bounced_subscriber is not None and bounced_subscriber.status == "bounced"
