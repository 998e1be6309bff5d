"""A real SMTP server for delivery tests: aiosmtpd on 127.0.0.1 in a thread, recording the
Message-ID and recipient of every message it accepts, and answering with faults on demand.

Faults are per recipient and per attempt: `faults={"a@x": ["rcpt:451 4.3.0 later", None]}`
refuses the first RCPT for a@x with 451 and accepts the second. Actions:

- "rcpt:CODE TEXT" / "data:CODE TEXT": answer RCPT or DATA with that reply;
- "drop": receive the whole message (it is recorded: the server got it), then close the
  connection before answering, as a crash or a network cut after end-of-DATA would;
- "stall": receive the message, then wait `stall` seconds before answering 250.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .serving import free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Received:
    message_id: str
    recipient: str
    session: int  # one number per connection
    data: bytes
    at: float = 0.0  # time.monotonic() when the message was accepted


@dataclass
class Sink:
    faults: dict[str, list[str | None]] = field(default_factory=dict)
    stall: float = 2.0
    keep_data: bool = True  # False for big runs: the messages are counted, not kept
    received: list[Received] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    logins: list[str] = field(default_factory=list)
    _sessions: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, address: str) -> str | None:
        plan = self.faults.get(address)
        attempt = self.attempts[address]
        return plan[attempt - 1] if plan and attempt <= len(plan) else None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self._lock:
            self.attempts[address] += 1
            fault = self._fault(address)
        if fault and fault.startswith("rcpt:"):
            return fault.removeprefix("rcpt:")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        address = envelope.rcpt_tos[0]
        with self._lock:
            fault = self._fault(address)
        if fault and fault.startswith("data:"):
            return fault.removeprefix("data:")
        self._record(session, envelope)
        if fault == "drop":
            server.transport.close()
            return "250 OK"
        if fault == "stall":
            await asyncio.sleep(self.stall)
        return "250 OK"

    def _record(self, session: Any, envelope: Any) -> None:
        data: bytes = envelope.original_content or envelope.content
        match = _MESSAGE_ID.search(data)
        message_id = match.group(1).decode() if match else ""
        kept = data if self.keep_data else b""
        with self._lock:
            number = self._sessions.setdefault(id(session), len(self._sessions))
            for recipient in envelope.rcpt_tos:
                self.received.append(
                    Received(message_id, recipient, number, kept, time.monotonic())
                )

    # --- what the tests ask -------------------------------------------------------------------

    def by_recipient(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in list(self.received):
            found.setdefault(item.recipient, []).append(item.message_id)
        return found

    @property
    def connections(self) -> int:
        return len({item.session for item in list(self.received)})

    def duplicates(self) -> int:
        return len(self.received) - len({(r.recipient, r.message_id) for r in self.received})


def authenticator(sink: Sink, users: dict[str, str]) -> Any:
    """Accepts `users` (login → password) and notes each successful login in the sink."""

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if users.get(login) == password:
                sink.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


@contextmanager
def running(sink: Sink, **options: Any) -> Iterator[Controller]:
    """Serve `sink` on a free port of 127.0.0.1 until the block ends."""
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), which the test trusts as its own CA."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
