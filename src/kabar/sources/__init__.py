"""Readers turn input files into articles: one reader per format, one interface.

`read_file` picks the reader from the file name and its first bytes, and raises
`ReadError` with a reason a person can act on when the file can't be used. A bad record
in a file of many is rejected through `ReadContext.reject` and the rest are still read.
Every article passes `vet`, the one policy for links and one-line fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from kabar.model import Article
from kabar.sources.base import (
    MAX_FILE_BYTES,
    MAX_NESTING,
    MAX_TITLE,
    ReadContext,
    ReadError,
    check_nesting,
    slugify,
    vet,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "MAX_TITLE",
    "ReadContext",
    "ReadError",
    "Reader",
    "check_nesting",
    "read_file",
    "readers",
    "slugify",
    "vet",
]


class Reader(Protocol):
    name: str

    def accepts(self, path: Path, head: bytes) -> bool:
        """Whether this reader understands a file with this name and these first bytes."""

    def read(self, path: Path, text: str, context: ReadContext) -> list[Article]:
        """The articles in the file; raise ReadError when there are none to be had."""


def readers() -> list[Reader]:
    from kabar.sources.feed import FeedReader
    from kabar.sources.jsonl import JsonReader
    from kabar.sources.page import PageReader

    # Order matters: JSON Feed is JSON, so the feed reader looks first.
    return [FeedReader(), JsonReader(), PageReader()]


def read_file(
    path: Path, context: ReadContext, *, max_bytes: int = MAX_FILE_BYTES
) -> list[Article]:
    size = path.stat().st_size
    if size == 0:
        raise ReadError("empty file")
    if size > max_bytes:
        raise ReadError(
            f"file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit"
        )
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ReadError("binary file (NUL bytes), not an article")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ReadError("file holds only whitespace")
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    for reader in readers():
        if reader.accepts(path, head):
            return reader.read(path, text, context)
    raise ReadError("unknown format: expected an article page, JSON, JSON Lines or a feed")
