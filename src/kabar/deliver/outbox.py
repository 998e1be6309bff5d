"""The outbox transport: every message becomes a file in a Maildir folder.

It is the embedded default, so a demo needs no mail server, and any mail client (mutt -f,
Thunderbird's Maildir support) can open the folder. A message is written to tmp/, flushed
to disk and renamed into new/ under a name derived from its Message-ID, so writing the same
delivery again (a resend after a crash) replaces the file instead of adding a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

from kabar.deliver.transport import Envelope, Lane, Reply, Transport


class _MaildirLane(Lane):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    async def send(self, envelope: Envelope, message: bytes) -> Reply:
        name = f"{hashlib.sha256(envelope.message_id.encode()).hexdigest()[:32]}.kabar.{self.host}"
        try:
            # Off the event loop: the fsync waits for the disk while other work goes on.
            await asyncio.to_thread(self._write, name, message)
        except OSError as exc:
            return Reply(451, f"4.3.0 cannot write to the outbox: {exc.strerror or exc}")
        return Reply(250, f"2.0.0 written to {self.folder / 'new' / name}")

    def _write(self, name: str, message: bytes) -> None:
        temporary = self.folder / "tmp" / name
        with temporary.open("wb") as handle:
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / "new" / name)


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        for part in ("tmp", "new", "cur"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        self.folder = folder
        super().__init__([_MaildirLane(folder)])

    def describe(self) -> str:
        return f"outbox {self.folder}"
