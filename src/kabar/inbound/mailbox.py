"""Where returned mail is read from: a Maildir folder, an IMAP mailbox, or files.

Each reader hands the processor batches of raw messages and moves a message only after
the batch's results are committed:

- Maildir: a message in new/ (or unseen in cur/) is moved to cur/ with the Seen flag; one
  not understood goes to the Maildir++ folder `.kabar-unrecognised` (a folder the
  mailbox's owner sees in any mail client). Nothing is ever deleted.
- IMAP (TLS from the first byte, a password from the env var the config names): unseen
  messages of the folder are read with BODY.PEEK, then moved (MOVE, or COPY and a
  deleted flag where the server lacks MOVE) to the done or the unrecognised folder.
- Files (`kabar bounces process`): an .eml file, an mbox or a Maildir, read and left
  where they are.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import mailbox as stdlib_mailbox
import os
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

from kabar.config import Mailbox, read_secret
from kabar.deliver.send import crash_point
from kabar.inbound.process import Processed, Processor

log = logging.getLogger(__name__)
BATCH = 200
UNRECOGNISED_MAILDIR = ".kabar-unrecognised"


class MailboxError(Exception):
    """The mailbox cannot be opened or read (a clear one-line reason)."""


# --- Maildir ------------------------------------------------------------------------------


def _unseen(folder: Path) -> list[Path]:
    fresh = sorted((folder / "new").glob("*"))
    old = [p for p in sorted((folder / "cur").glob("*")) if "S" not in p.name.partition(":2,")[2]]
    return [p for p in [*fresh, *old] if p.is_file()]


def _seen_name(path: Path) -> str:
    base, _, flags = path.name.partition(":2,")
    return f"{base}:2,{''.join(sorted(set(flags + 'S')))}"


def fetch_maildir(processor: Processor, folder: Path, *, source: str = "maildir") -> int:
    """Process every unseen message of the Maildir; returns how many were read."""
    if not (folder / "new").is_dir() or not (folder / "cur").is_dir():
        raise MailboxError(f"{folder}: not a Maildir (no new/ and cur/ folders)")
    unrecognised = folder / UNRECOGNISED_MAILDIR
    paths = _unseen(folder)
    for start in range(0, len(paths), BATCH):
        batch = paths[start : start + BATCH]
        contents = []
        for path in batch:
            try:
                contents.append(path.read_bytes())
            except FileNotFoundError:  # another reader moved it meanwhile
                contents.append(b"")
        kept = [(p, c) for p, c in zip(batch, contents, strict=True) if c]
        results = processor.messages([c for _, c in kept], source)
        crash_point("inbound_after_commit")
        for (path, _), processed in zip(kept, results, strict=True):
            _move_maildir(path, folder, unrecognised, processed)
    return len(paths)


def _move_maildir(path: Path, folder: Path, unrecognised: Path, processed: Processed) -> None:
    target = folder if processed.recognised else unrecognised
    if not processed.recognised:
        for part in ("tmp", "new", "cur"):
            (unrecognised / part).mkdir(parents=True, exist_ok=True)
        destination = target / "new" / path.name.partition(":2,")[0]
    else:
        destination = target / "cur" / _seen_name(path)
    # Moved by another reader meanwhile: it read the same results, which changed nothing.
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, destination)


# --- files ----------------------------------------------------------------------------------


def read_path(path: Path) -> Iterator[bytes]:
    """The raw messages of an .eml file, an mbox, or a Maildir folder."""
    if path.is_dir():
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise MailboxError(f"{path}: a folder, but not a Maildir (no new/ and cur/)")
        for item in sorted([*(path / "new").glob("*"), *(path / "cur").glob("*")]):
            if item.is_file():
                yield item.read_bytes()
        return
    with path.open("rb") as handle:
        start = handle.read(5)
    if start == b"From ":
        box = stdlib_mailbox.mbox(str(path), create=False)
        try:
            for key in box.iterkeys():
                yield box.get_bytes(key)
        finally:
            box.close()
        return
    yield path.read_bytes()


def process_path(processor: Processor, path: Path) -> int:
    batch: list[bytes] = []
    count = 0
    for data in read_path(path):
        batch.append(data)
        if len(batch) >= BATCH:
            processor.messages(batch, "file")
            count += len(batch)
            batch = []
    if batch:
        processor.messages(batch, "file")
        count += len(batch)
    return count


# --- IMAP -----------------------------------------------------------------------------------


def fetch_imap(processor: Processor, settings: Mailbox, *, ca_file: str | None = None) -> int:
    """Process the folder's unseen messages, moving each after its result is committed."""
    assert settings.host and settings.username and settings.password_env
    password = read_secret(settings.password_env, "the bounce mailbox (IMAP)")
    context = ssl.create_default_context(cafile=ca_file or settings.ca_file)
    try:
        imap = imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context, timeout=60)
    except (OSError, ssl.SSLError) as exc:
        raise MailboxError(f"IMAP {settings.host}:{settings.port}: {exc}") from None
    try:
        try:
            imap.login(settings.username, password)
        except imaplib.IMAP4.error:
            raise MailboxError(
                f"IMAP {settings.host}: login as {settings.username} refused"
            ) from None
        return _fetch_folder(imap, processor, settings)
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def _fetch_folder(imap: imaplib.IMAP4, processor: Processor, settings: Mailbox) -> int:
    status, _ = imap.select(_quote(settings.folder))
    if status != "OK":
        raise MailboxError(f"IMAP: cannot open folder {settings.folder!r}")
    for folder in (settings.done_folder, settings.unrecognised_folder):
        imap.create(_quote(folder))  # "already exists" is a NO, which is fine
    status, data = imap.uid("SEARCH", "UNSEEN")
    uids = data[0].split() if status == "OK" and data and data[0] else []
    can_move = "MOVE" in imap.capabilities
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        contents = [_fetch(imap, uid) for uid in batch]
        kept = [(uid, c) for uid, c in zip(batch, contents, strict=True) if c is not None]
        results = processor.messages([c for _, c in kept], "imap")
        for (uid, _), processed in zip(kept, results, strict=True):
            folder = settings.done_folder if processed.recognised else settings.unrecognised_folder
            _move(imap, uid, folder, can_move)
        if not can_move:
            imap.expunge()
    return len(uids)


def _fetch(imap: imaplib.IMAP4, uid: bytes) -> bytes | None:
    status, parts = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
    if status != "OK":
        return None
    for part in parts:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return None


def _move(imap: imaplib.IMAP4, uid: bytes, folder: str, can_move: bool) -> None:
    if can_move:
        status, _ = imap.uid("MOVE", uid.decode(), _quote(folder))
        if status == "OK":
            return
    status, _ = imap.uid("COPY", uid.decode(), _quote(folder))
    if status == "OK":
        imap.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Seen \Deleted)")
    else:  # cannot copy: at least never read it as new again
        imap.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Seen)")


def _quote(folder: str) -> str:
    if not re.fullmatch(r"[^\"\\\r\n]+", folder):
        raise MailboxError(f"IMAP folder name {folder!r} has characters kabar does not send")
    return f'"{folder}"'


def fetch(processor: Processor) -> int:
    """Read the configured mailbox (bounces.mailbox) once; returns how many were read."""
    settings = processor.config.bounces.mailbox
    if settings is None:
        raise MailboxError("no mailbox is configured (bounces.mailbox)")
    if settings.kind == "maildir":
        assert settings.path
        return fetch_maildir(processor, processor.config.resolve(settings.path))
    return fetch_imap(processor, settings)
