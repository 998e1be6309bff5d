"""The outbox transport: every message becomes a file in a Maildir folder.

It is the embedded default, so a demo needs no mail server, and any mail client (mutt -f,
Thunderbird's Maildir support) can open the folder. A message is written to tmp/, flushed
to disk and moved into new/ under a name derived from its Message-ID and recipient.

Two different messages never share a file: a file is only replaced by the same delivery
written again (a resend after a crash: same Message-ID, same recipient, checked against the
stored file's own Message-ID). Anything else that lands on a taken name, or a message
without a Message-ID, gets a name of its own instead.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import os
import secrets
import socket
from pathlib import Path

from kabar.deliver.transport import Envelope, Lane, Reply, Transport

_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def message_id_of(message: bytes) -> str:
    """The Message-ID header of a message ('' if it has none)."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return str(_HEADERS.parsebytes(head + b"\r\n\r\n").get("Message-ID", "")).strip()


class _MaildirLane(Lane):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    async def send(self, envelope: Envelope, message: bytes) -> Reply:
        message_id = message_id_of(message)
        if envelope.message_id and message_id != envelope.message_id:
            return Reply(554, f"5.6.0 Message-ID {message_id!r} is not the envelope's")
        try:
            # Off the event loop: the fsync waits for the disk while other work goes on.
            path = await asyncio.to_thread(self._write, message_id, envelope.recipient, message)
        except OSError as exc:
            return Reply(451, f"4.3.0 cannot write to the outbox: {exc.strerror or exc}")
        return Reply(250, f"2.0.0 written to {path}")

    def _name(self, message_id: str, recipient: str) -> str:
        if not message_id:
            return f"{secrets.token_hex(16)}.kabar.{self.host}"
        seed = f"{message_id}\0{recipient.lower()}".encode()
        return f"{hashlib.sha256(seed).hexdigest()[:32]}.kabar.{self.host}"

    def _write(self, message_id: str, recipient: str, message: bytes) -> Path:
        name = self._name(message_id, recipient)
        temporary = self.folder / "tmp" / f"{name}.{secrets.token_hex(4)}"
        with temporary.open("wb") as handle:
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            while True:
                target = self.folder / "new" / name
                try:
                    os.link(temporary, target)  # fails if the name is taken: never a blind replace
                    return target
                except FileExistsError:
                    if message_id and _stored_message_id(target) == message_id:
                        os.replace(temporary, target)  # the same delivery again
                        return target
                name = f"{secrets.token_hex(16)}.kabar.{self.host}"
        finally:
            temporary.unlink(missing_ok=True)


def _stored_message_id(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return message_id_of(handle.read(64 * 1024))
    except FileNotFoundError:
        return None


class OutboxError(Exception):
    """The outbox folder cannot be made: a setup problem, said before any issue exists."""


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        for part in ("tmp", "new", "cur"):
            try:
                (folder / part).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutboxError(
                    f"delivery.outbox: cannot make {folder / part}: {exc.strerror or exc}"
                ) from exc
        self.folder = folder
        super().__init__([_MaildirLane(folder)])

    def describe(self) -> str:
        return f"outbox {self.folder}"
