"""Readers turn input files into articles: one reader per format, one interface.

`read_file` picks the reader from the file name and its first bytes, and raises
`ReadError` with a reason a person can act on when the file can't be used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Protocol

from kabar.model import Article

MAX_FILE_BYTES = 20 * 1024 * 1024


class ReadError(Exception):
    """The file (or one record of it) can't be read; the message says why."""


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs beyond the bytes."""

    source: str
    base_url: str
    language: str
    timezone: tzinfo
    as_of: datetime
    section: str = ""
    # Per-record problems in multi-record files (a bad JSON line); the rest still count.
    warn: Callable[[str], None] = field(default=lambda message: None)


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


def keep_good(articles: list[Article], problems: list[str], context: ReadContext) -> list[Article]:
    """A multi-record file whose every record is unusable is a failure; otherwise the bad
    records are reported as warnings and the good ones kept."""
    if problems and not articles:
        raise ReadError(problems[0])
    for problem in problems:
        context.warn(problem)
    return articles


_SLUG_DROP = re.compile(r"[^\w\s-]", re.UNICODE)
_SLUG_GAPS = re.compile(r"[\s_-]+")


def slugify(text: str, max_length: int = 80) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _SLUG_GAPS.sub("-", _SLUG_DROP.sub("", ascii_text).strip().lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[: max_length + 1].rsplit("-", 1)[0]  # whole words only
    return slug or "artikel"
