"""The outbox: one file per message, and only the same delivery written again replaces one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kabar.deliver.outbox import OutboxTransport
from kabar.deliver.transport import Envelope


def mail(message_id: str, to: str, body: str) -> bytes:
    head = f"From: a@example.com\r\nTo: {to}\r\n"
    if message_id:
        head += f"Message-ID: {message_id}\r\n"
    return f"{head}\r\n{body}\r\n".encode()


def send(folder: Path, envelope: Envelope, message: bytes) -> int:
    async def run() -> int:
        transport = OutboxTransport(folder)
        try:
            return (await transport.send_one(envelope, message)).code
        finally:
            await transport.close()

    return asyncio.run(run())


def stored(folder: Path) -> list[bytes]:
    return sorted(path.read_bytes() for path in (folder / "new").iterdir())


def test_a_resend_of_the_same_delivery_replaces_its_file(tmp_path: Path) -> None:
    envelope = Envelope("a@example.com", "b@example.com", "<1@example.com>")
    assert send(tmp_path, envelope, mail("<1@example.com>", "b@example.com", "first")) == 250
    assert send(tmp_path, envelope, mail("<1@example.com>", "b@example.com", "again")) == 250
    assert stored(tmp_path) == [mail("<1@example.com>", "b@example.com", "again")]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_messages_without_a_message_id_never_replace_each_other(tmp_path: Path) -> None:
    for n in range(5):
        envelope = Envelope("a@example.com", f"r{n}@example.com", "")
        assert send(tmp_path, envelope, mail("", f"r{n}@example.com", str(n))) == 250
    assert len(stored(tmp_path)) == 5


def test_one_message_id_to_two_recipients_is_two_files(tmp_path: Path) -> None:
    for to in ("b@example.com", "c@example.com"):
        send(tmp_path, Envelope("a@example.com", to, "<1@example.com>"),
             mail("<1@example.com>", to, to))  # fmt: skip
    assert len(stored(tmp_path)) == 2


def test_a_different_message_on_a_taken_name_gets_its_own(tmp_path: Path) -> None:
    envelope = Envelope("a@example.com", "b@example.com", "<1@example.com>")
    send(tmp_path, envelope, mail("<1@example.com>", "b@example.com", "first"))
    [taken] = (tmp_path / "new").iterdir()
    taken.write_bytes(mail("<other@example.com>", "b@example.com", "someone else's"))
    send(tmp_path, envelope, mail("<1@example.com>", "b@example.com", "second"))
    assert stored(tmp_path) == [
        mail("<1@example.com>", "b@example.com", "second"),
        mail("<other@example.com>", "b@example.com", "someone else's"),
    ]


def test_an_envelope_naming_another_message_id_is_refused(tmp_path: Path) -> None:
    envelope = Envelope("a@example.com", "b@example.com", "<1@example.com>")
    assert send(tmp_path, envelope, mail("<2@example.com>", "b@example.com", "x")) == 554
    assert stored(tmp_path) == []


def test_message_id_of_reads_only_the_header() -> None:
    from kabar.deliver.outbox import message_id_of

    assert message_id_of(mail("<x@y>", "b@example.com", "Message-ID: <no@no>")) == "<x@y>"
    assert message_id_of(b"Subject: hi\n\nMessage-ID: <no@no>\n") == ""
