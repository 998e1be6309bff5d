"""JSON and JSON Lines: one article per object.

Accepted shapes: a JSON array of objects, one object, `{"articles": [...]}`, or one object
per line. Field names are listed in `FIELDS` (and in the README). A bad record is
rejected with its line and skipped; the rest of the file is still read.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from kabar.model import Article, RelatedLink, article_id
from kabar.sources.base import (
    MAX_NESTING,
    RELATIVE_TIME,
    ReadContext,
    ReadError,
    check_nesting,
    in_range,
    parse_relative_time,
    vet,
)
from kabar.text import clean, one_line, split_body, summarize

REQUIRED = ("url", "title", "body", "published")
OPTIONAL = (
    "guid", "summary", "section", "tags", "language", "authors", "credit", "image_url",
    "image_alt", "updated", "related", "dateline",
)  # fmt: skip
FIELDS = REQUIRED + OPTIONAL


class JsonReader:
    name = "json"

    def accepts(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() in {".json", ".jsonl", ".ndjson"}:
            return True
        return head[:1] in (b"{", b"[")

    def read(self, path: Path, text: str, context: ReadContext) -> list[Article]:
        check_nesting(text)
        articles, rejected = [], 0
        for line, record in _records(text):
            try:
                articles.append(article_from_record(record, context.at(line)))
            except (ReadError, ValueError, TypeError) as exc:
                context.reject(line, str(exc))
                rejected += 1
        if not articles and not rejected:
            raise ReadError("no articles in the file")
        return articles


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")


def _records(text: str) -> Iterator[tuple[int, Any]]:
    """(line, object) pairs, one object at a time: a 20 MiB array is never held whole as
    Python objects, only the articles made from it."""
    start = _SPACE.match(text).end()  # type: ignore[union-attr]
    if text.startswith("[", start):
        yield from _array_items(text, start)
        return
    try:
        document, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if text.count("\n", start, len(text.rstrip())) == 0:
            raise ReadError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        yield from _lines(text)
        return
    if _SPACE.match(text, end).end() != len(text):  # type: ignore[union-attr]
        yield from _lines(text)  # JSON Lines: one object, then more
        return
    if isinstance(document, dict) and isinstance(document.get("articles"), list):
        for item in document["articles"]:
            yield _line_at(text, start), item
    elif isinstance(document, dict):
        yield _line_at(text, start), document
    else:
        raise ReadError("expected a JSON object or an array of objects")


def _array_items(text: str, start: int) -> Iterator[tuple[int, Any]]:
    line, counted = 1 + text.count("\n", 0, start), start
    position = _SPACE.match(text, start + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", position):
        return
    while True:
        line += text.count("\n", counted, position)
        counted = position
        try:
            item, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            yield line, _Invalid(f"invalid JSON: {exc.msg}; the rest of the file is not read")
            return
        yield line, item
        position = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", position):
            position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", position):
            after = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
            if after != len(text):
                line += text.count("\n", counted, after)
                yield line, _Invalid("invalid JSON: extra data after the array")
            return
        else:
            line += text.count("\n", counted, position)
            yield (
                line,
                _Invalid(
                    "invalid JSON: expected ',' or ']' after an item; "
                    "the rest of the file is not read"
                ),
            )
            return


def _lines(text: str) -> Iterator[tuple[int, Any]]:
    """JSON Lines, split on "\\n" only: U+2028 or U+0085 inside a string is text, not a
    line break (str.splitlines would split there and shift every later line number)."""
    start = 0
    for number in itertools.count(1):
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _Invalid(f"invalid JSON: {exc.msg}")
            except RecursionError:  # a line check_nesting saw as inside a broken string
                yield number, _Invalid(f"JSON nested deeper than {MAX_NESTING} levels")
        if end < 0:
            return
        start = end + 1


def _line_at(text: str, position: int) -> int:
    return 1 + text.count("\n", 0, position)


class _Invalid:
    """A record that isn't JSON: rejected with its reason, like a record missing a field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def article_from_record(record: Any, context: ReadContext) -> Article:
    if isinstance(record, _Invalid):
        raise ReadError(record.reason)
    if not isinstance(record, dict):
        raise ReadError(f"expected an object, got {type(record).__name__}")
    missing = [name for name in REQUIRED if not record.get(name)]
    if missing:
        raise ReadError(f"missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(record) - set(FIELDS) - {"id"})
    if unknown:
        context.warn(f"ignoring unknown field(s) {', '.join(unknown)} in {record['url']!r}")
    url = _string(record, "url")
    guid = _string(record, "guid") or url
    published = parse_time(_string(record, "published"), context, "published")
    updated_text = _string(record, "updated")
    updated = parse_time(updated_text, context, "updated") if updated_text else published
    body_html, body_text = split_body(_string(record, "body"))
    article = Article(
        id=article_id(context.source, guid),
        guid=guid,
        source=context.source,
        url=url,
        title=one_line(_string(record, "title")),
        published=published,
        updated=max(updated, published),
        summary=one_line(_string(record, "summary")) or summarize(body_text),
        body_text=body_text,
        body_html=body_html,
        authors=_strings(record, "authors"),
        credit=one_line(_string(record, "credit")),
        section=one_line(_string(record, "section")) or context.section,
        tags=_strings(record, "tags"),
        image_url=_string(record, "image_url"),
        image_alt=one_line(_string(record, "image_alt")),
        language=_string(record, "language") or context.language,
        dateline=one_line(_string(record, "dateline")),
        related=tuple(_related(record.get("related"))),
    )
    return vet(article, context)


def parse_time(value: str, context: ReadContext, name: str) -> datetime:
    """RFC 3339 / ISO 8601, a time without an offset taken as the site's local time; or a
    relative time as news pages print it ("4 jam lalu"), read against the file's as-of
    time like a page's "Berita terkait" list."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        age = parse_relative_time(value)
        if age is None and RELATIVE_TIME.match(value.strip()):
            raise ReadError(f"{name}: {value!r} is more than a century ago") from None
        if age is None:
            raise ReadError(
                f"{name}: {value!r} is neither an ISO 8601 date-time nor a relative time"
                " such as '4 jam lalu'"
            ) from None
        as_of = context.as_of.astimezone(context.timezone).replace(second=0, microsecond=0)
        try:
            return in_range(as_of - age, name, value)
        except OverflowError:  # an --as-of near year 1
            raise ReadError(f"{name}: {value!r} is out of the range of dates") from None
    return in_range(
        moment if moment.tzinfo else moment.replace(tzinfo=context.timezone), name, value
    )


def _string(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        kind = "true or false" if isinstance(value, bool) else type(value).__name__
        raise ReadError(f"{name}: expected a string, got {kind}")
    return clean(str(value))


def _strings(record: dict[str, Any], name: str) -> tuple[str, ...]:
    value = record.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ReadError(f"{name}: expected a list of strings")
    return tuple(dict.fromkeys(one_line(item) for item in value if one_line(item)))


def _related(value: Any) -> Iterator[RelatedLink]:
    if value is None:
        return
    if not isinstance(value, list):
        raise ReadError("related: expected a list of {title, url, summary} objects")
    for item in value:
        if not isinstance(item, dict) or not item.get("title"):
            raise ReadError("related: each item needs at least a title")
        yield RelatedLink(
            one_line(str(item["title"])),
            str(item.get("url", "")),
            one_line(str(item.get("summary", ""))),
        )
