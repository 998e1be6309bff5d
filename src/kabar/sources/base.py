"""What every reader shares: the context it reads in, the error it raises, the limits, and
`vet`, the one policy for links and one-line fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial

from kabar.links import balanced_bidi, safe_url
from kabar.model import Article

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TITLE = 300  # characters; a longer title is cut at a word, with a warning
# JSON nesting deeper than this is refused before parsing: the parsers recurse, and no
# article needs more than a few levels.
MAX_NESTING = 64

RELATIVE_TIME = re.compile(
    r"^([0-9]+)\s+(detik|menit|jam|hari|minggu|bulan|tahun"
    r"|seconds?|minutes?|hours?|days?|weeks?|months?|years?)\s+(?:yang\s+)?(?:lalu|ago)$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {
    "detik": 1, "second": 1, "menit": 60, "minute": 60, "jam": 3600, "hour": 3600,
    "hari": 86400, "day": 86400, "minggu": 604800, "week": 604800,
    "bulan": 30 * 86400, "month": 30 * 86400, "tahun": 365 * 86400, "year": 365 * 86400,
}  # fmt: skip
# "3000 tahun lalu" is no publication time: past this a line is not read as one (and the
# date it gives would fall outside what datetime holds).
_LONGEST_AGE = timedelta(days=100 * 365)


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
    # Something changed or ignored in a record that is still kept (a dropped link).
    warn: Callable[[str], None] = field(default=lambda message: None)
    # The same, with where the record is (see `reject`); `at` gives a record's context.
    warn_at: Callable[[int | str, str], None] | None = None
    # A record that is not kept, with where it is in the file: a line number, or a name
    # like "entry 3" where lines mean nothing (a parsed XML feed).
    reject: Callable[[int | str, str], None] = field(default=lambda where, reason: None)

    def at(self, where: int | str) -> ReadContext:
        """The context for one record: its warnings say where in the file it is."""
        if self.warn_at is None:
            return self
        return replace(self, warn=partial(self.warn_at, where))


def vet(article: Article, context: ReadContext) -> Article:
    """The article as every output may show it: its own URL an absolute http(s) one (or
    the record is rejected), other links dropped unless they are, one-line fields without
    unbalanced bidirectional controls, and the title at most MAX_TITLE characters."""
    if not safe_url(article.url):
        raise ReadError(f"url {article.url[:100]!r} is not an absolute http(s) URL")
    for name in ("published", "updated"):  # a page's date line, a feed's entry
        in_range(getattr(article, name), name, getattr(article, name).isoformat())
    changes: dict[str, object] = {}
    title = _one_line(article.title)
    if len(title) > MAX_TITLE:
        context.warn(f"title of {article.url!r} cut from {len(title)} to {MAX_TITLE} characters")
        title = _cut(title, MAX_TITLE)
    if title != article.title:
        changes["title"] = title
    for name in ("authors", "tags"):
        values = getattr(article, name)
        cleaned = tuple(dict.fromkeys(value for value in map(_one_line, values) if value))
        if cleaned != values:
            changes[name] = cleaned
    if article.image_url and not safe_url(article.image_url):
        context.warn(
            f"dropped image_url {article.image_url[:100]!r} of {article.url!r}: not http(s)"
        )
        changes["image_url"] = ""
    if any(link.url and not safe_url(link.url) for link in article.related):
        related = []
        for link in article.related:
            if link.url and not safe_url(link.url):
                context.warn(
                    f"dropped related url {link.url[:100]!r} of {article.url!r}: not http(s)"
                )
                link = replace(link, url="")
            related.append(link)
        changes["related"] = tuple(related)
    return article.with_changes(**changes) if changes else article


def _one_line(text: str) -> str:
    return balanced_bidi(text).strip()


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a word with an ellipsis."""
    head = text[: limit - 1]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip() + "…"


# Curly brackets become square ones (a mismatch is invalid JSON anyway, and the depth is
# what matters); everything but brackets and quotes goes.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_WINDOW = 1 << 16


def check_nesting(text: str | bytes, limit: int = MAX_NESTING) -> None:
    """Raise ReadError when JSON `text` nests deeper than `limit`, without parsing it.

    Each round removes every innermost pair (bytes.replace, in C), so the rounds are the
    depth. Nothing here makes an object per bracket or per string, so memory stays
    within a few times the input's size whatever the input holds.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    skeleton = _brackets_outside_strings(data)
    for _ in range(limit):
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            break
        skeleton = shorter
    # Left: pairs still nested (too deep), or unbalanced brackets as "]]][[[", where a run
    # of openers still makes the parser recurse before it reaches the error.
    if b"[]" in skeleton or len(skeleton) - len(skeleton.rstrip(b"[")) > limit:
        raise ReadError(f"JSON nested deeper than {limit} levels")


def _brackets_outside_strings(data: bytes) -> bytes:
    """The brackets of JSON `data` that are not inside strings, all as `[` and `]`.

    UTF-8 never uses ASCII bytes inside a multi-byte character, so this works on bytes.
    Escapes go first, so that every quote left opens or closes a string; two quotes with
    no bracket between them change nothing and go too. What remains is split by quote a
    window at a time, keeping the pieces outside strings."""
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = plain.translate(_SQUARE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' not in marks:
        return marks
    kept, inside = [], False
    for start in range(0, len(marks), _WINDOW):
        pieces = marks[start : start + _WINDOW].split(b'"')
        kept.append(b"".join(pieces[1 if inside else 0 :: 2]))
        inside ^= len(pieces) % 2 == 0  # an odd number of quotes in the window
    return b"".join(kept)


_SLUG_DROP = re.compile(r"[^\w\s-]", re.UNICODE)
_SLUG_GAPS = re.compile(r"[\s_-]+")


def slugify(text: str, max_length: int = 80) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _SLUG_GAPS.sub("-", _SLUG_DROP.sub("", ascii_text).strip().lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[: max_length + 1].rsplit("-", 1)[0]  # whole words only
    return slug or "artikel"


def parse_relative_time(line: str) -> timedelta | None:
    """`4 jam lalu` → 4 hours (None if the line is not a relative time)."""
    match = RELATIVE_TIME.match(line.strip())
    if not match:
        return None
    amount, unit = match.groups()
    unit = unit.lower().rstrip("s") if unit.lower() not in _UNIT_SECONDS else unit.lower()
    seconds = int(amount) * _UNIT_SECONDS[unit]
    if seconds > _LONGEST_AGE.total_seconds():
        return None
    return timedelta(seconds=seconds)


def in_range(moment: datetime, name: str, value: object) -> datetime:
    """`moment`, if it exists in UTC too: every output compares and writes times in UTC,
    where 0001-01-01T00:00+14:00 overflows."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ReadError(f"{name}: {value!r} is out of the range of dates") from None
    return moment
