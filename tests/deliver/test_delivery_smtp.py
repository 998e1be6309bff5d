"""The SMTP transport against a real aiosmtpd server: TLS, AUTH, reuse, recycling, rate
limit, hard timeout, and how each server reply is classified."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from kabar import config as config_module
from kabar.config import Config
from kabar.deliver.smtp import SmtpLane, SmtpTransport
from kabar.deliver.transport import Envelope, Reply

from ..support.delivery_sink import (
    Sink,
    authenticator,
    free_port,
    running,
    self_signed,
    server_context,
)
from ..support.project import WriteConfig

MESSAGE = (
    b"From: a@kabar.example.id\r\nTo: b@example.com\r\nSubject: t\r\n"
    b"Message-ID: <m1@kabar.example.id>\r\n\r\nhello\r\n"
)


def smtp_config(write_config: WriteConfig, port: int, **smtp: Any) -> Config:
    settings = {"host": "127.0.0.1", "port": port, "starttls": False, "connections": 1, **smtp}
    return config_module.load(write_config(delivery={"transport": "smtp", "smtp": settings}))


def send_all(transport: SmtpTransport, recipients: list[str]) -> list[Reply]:
    async def one(recipient: str) -> Reply:
        async with transport.lane() as lane:
            envelope = Envelope("a@kabar.example.id", recipient, f"<{recipient}>")
            return await transport.send(lane, envelope, MESSAGE)

    async def run() -> list[Reply]:
        try:
            return list(await asyncio.gather(*(one(r) for r in recipients)))
        finally:
            await transport.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replies = asyncio.run(run())
        gc.collect()  # an unclosed connection warns when it is collected
    assert not [w.message for w in caught if issubclass(w.category, ResourceWarning)]
    return replies


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(250, "2.0.0 ok"), "sent"),
        (Reply(421, "4.7.0 closing", "rcpt"), "retry"),
        (Reply(451, "4.3.0 later", "rcpt"), "retry"),
        (Reply(452, "4.5.3 too many", "rcpt"), "retry"),
        (Reply(0, "no reply within 1s"), "retry"),
        (Reply(550, "5.1.1 no such user", "rcpt"), "bounce"),
        (Reply(554, "5.7.1 rejected: policy", "data"), "sender"),
        (Reply(550, "5.7.26 unauthenticated", "rcpt"), "sender"),
        (Reply(553, "5.1.8 bad sender domain", "mail"), "sender"),
        (Reply(535, "5.7.8 bad credentials", "auth"), "sender"),
        (Reply(552, "5.3.4 message too big", "data"), "failed"),
        (Reply(550, "no such user here", "rcpt"), "failed"),
    ],
)
def test_each_reply_says_what_the_ledger_does(reply: Reply, kind: str) -> None:
    assert reply.kind == kind


def test_starttls_and_auth_over_reused_connections_with_one_tls_context(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    sink = Sink()
    monkeypatch.setenv("KABAR_SMTP_PASSWORD", "rahasia")
    options = {
        "tls_context": server_context(cert, key),
        "require_starttls": True,
        "auth_required": True,
        "authenticator": authenticator(sink, {"kabar": "rahasia"}),
    }
    with running(sink, **options) as server:
        config = smtp_config(
            write_config, server.port, starttls=True, username="kabar",
            password_env="KABAR_SMTP_PASSWORD", connections=2, ca_file=str(cert),
        )  # fmt: skip
        transport = SmtpTransport(config)
        replies = send_all(transport, [f"r{n}@example.com" for n in range(6)])
    assert [reply.kind for reply in replies] == ["sent"] * 6
    assert sorted(item.recipient for item in sink.received) == [
        f"r{n}@example.com" for n in range(6)
    ]
    assert sink.logins == ["kabar", "kabar"]  # two connections, each reused
    assert sink.connections == 2
    contexts = {id(lane.context) for lane in transport._lanes if isinstance(lane, SmtpLane)}
    assert len(contexts) == 1 and None not in {lane.context for lane in transport._lanes}  # type: ignore[attr-defined]


def test_a_wrong_password_is_a_sender_problem(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    sink = Sink()
    monkeypatch.setenv("KABAR_SMTP_PASSWORD", "salah")
    options = {
        "tls_context": server_context(cert, key),
        "auth_required": True,
        "authenticator": authenticator(sink, {"kabar": "rahasia"}),
    }
    with running(sink, **options) as server:
        config = smtp_config(
            write_config, server.port, starttls=True, username="kabar",
            password_env="KABAR_SMTP_PASSWORD", ca_file=str(cert),
        )  # fmt: skip
        [reply] = send_all(SmtpTransport(config), ["r@example.com"])
    assert (reply.stage, reply.kind) == ("auth", "sender")
    assert not sink.received


def test_implicit_tls(write_config: WriteConfig, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    sink = Sink()
    with running(sink, ssl_context=server_context(cert, key)) as server:
        config = smtp_config(write_config, server.port, tls=True, ca_file=str(cert))
        replies = send_all(SmtpTransport(config), ["a@example.com", "b@example.com"])
    assert [reply.kind for reply in replies] == ["sent", "sent"]
    assert len(sink.received) == 2


def test_an_untrusted_certificate_is_a_sender_problem(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    sink = Sink()
    with running(sink, ssl_context=server_context(cert, key)) as server:
        config = smtp_config(write_config, server.port, tls=True)  # no ca_file: not trusted
        [reply] = send_all(SmtpTransport(config), ["a@example.com"])
    assert (reply.stage, reply.kind) == ("tls", "sender")
    assert "certificate" in reply.text.lower()


def test_connections_are_recycled_every_m_messages(write_config: WriteConfig) -> None:
    sink = Sink()
    with running(sink) as server:
        config = smtp_config(write_config, server.port, recycle_after=3)
        send_all(SmtpTransport(config), [f"r{n}@example.com" for n in range(7)])
    assert len(sink.received) == 7
    assert sink.connections == 3  # 3 + 3 + 1


def test_the_rate_limit_holds_across_connections(write_config: WriteConfig) -> None:
    sink = Sink()
    with running(sink) as server:
        config = smtp_config(write_config, server.port, connections=3, rate_per_second=20)
        started = time.monotonic()
        send_all(SmtpTransport(config), [f"r{n}@example.com" for n in range(11)])
        elapsed = time.monotonic() - started
    assert len(sink.received) == 11
    assert elapsed >= 0.45  # 11 sends at 20/s: the last starts 0.5 s after the first


def test_a_stalled_server_hits_the_hard_timeout_and_the_lane_reconnects(
    write_config: WriteConfig,
) -> None:
    sink = Sink(faults={"slow@example.com": ["stall"]}, stall=3.0)
    with running(sink) as server:
        config = smtp_config(write_config, server.port, timeout="400ms")
        transport = SmtpTransport(config)
        started = time.monotonic()
        replies = send_all(transport, ["slow@example.com"])
        elapsed = time.monotonic() - started
        replies += send_all(transport, ["next@example.com"])
    assert (replies[0].code, replies[0].kind) == (0, "retry")
    assert elapsed < 1.5
    assert replies[1].kind == "sent"


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        ("rcpt:421 4.7.0 closing connection", 421, "retry"),
        ("rcpt:451 4.3.0 try again later", 451, "retry"),
        ("rcpt:452 4.2.2 mailbox full", 452, "retry"),
        ("rcpt:550 5.1.1 no such user", 550, "bounce"),
        ("data:554 5.7.1 message refused by policy", 554, "sender"),
        ("drop", 0, "retry"),
    ],
)
def test_server_faults_become_replies(
    write_config: WriteConfig, fault: str, code: int, kind: str
) -> None:
    sink = Sink(faults={"x@example.com": [fault]})
    with running(sink) as server:
        transport = SmtpTransport(smtp_config(write_config, server.port))
        replies = send_all(transport, ["x@example.com"])
        replies += send_all(transport, ["after@example.com"])  # the lane still works
    assert (replies[0].code, replies[0].kind) == (code, kind)
    assert replies[1].kind == "sent"


def test_nothing_listening_is_transient(write_config: WriteConfig) -> None:
    config = smtp_config(write_config, free_port())
    [reply] = send_all(SmtpTransport(config), ["x@example.com"])
    assert (reply.code, reply.kind) == (0, "retry")


def test_starttls_required_but_not_offered_is_a_sender_problem(write_config: WriteConfig) -> None:
    sink = Sink()
    with running(sink) as server:  # plain SMTP, no STARTTLS
        config = smtp_config(write_config, server.port, starttls=True)
        [reply] = send_all(SmtpTransport(config), ["a@example.com"])
    assert (reply.stage, reply.kind) == ("tls", "sender")
    assert not sink.received


def test_a_server_that_never_greets_times_out(write_config: WriteConfig) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel, then nothing is said
        config = smtp_config(write_config, silent.getsockname()[1], timeout="300ms")
        [reply] = send_all(SmtpTransport(config), ["a@example.com"])
    assert (reply.code, reply.stage, reply.kind) == (0, "connect", "retry")
