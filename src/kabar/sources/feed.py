"""RSS 2.0 and Atom (through feedparser) and JSON Feed 1.x, from files or URLs.

Dates keep the offset the feed wrote (feedparser's parsed times are UTC only, so the
raw strings are parsed here). Remote feeds are fetched with conditional GET: the ETag
and Last-Modified of the last answer are sent back, and a 304 means nothing to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from xml.sax import SAXParseException

import feedparser
import httpx

from kabar import __version__
from kabar.model import Article, article_id
from kabar.sources.base import MAX_FILE_BYTES, ReadContext, ReadError, check_nesting, vet
from kabar.store import SourceState
from kabar.text import html_to_text, one_line, split_body, summarize

SECTION_SCHEMES = ("section", "rubrik", "kanal")  # kabar's own feeds mark sections so


class FeedReader:
    name = "feed"

    def accepts(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() in {".xml", ".rss", ".atom", ".rdf"}:
            return True
        lowered = head[:512].lower()
        if lowered.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
            return True
        return head[:1] == b"{" and b"jsonfeed.org/version" in lowered

    def read(self, path: Path, text: str, context: ReadContext) -> list[Article]:
        return parse_feed(text.encode("utf-8"), context)


def parse_feed(data: bytes, context: ReadContext) -> list[Article]:
    if data.lstrip()[:1] == b"{":
        return _parse_json_feed(data, context)
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    problem = parsed.get("bozo_exception")
    # Malformed XML is refused even when feedparser's loose parser salvages entries: what it
    # salvages is a guess. Lesser complaints (a wrong declared encoding) are tolerated.
    if isinstance(problem, SAXParseException) or (parsed.bozo and not parsed.entries):
        raise ReadError(f"not a valid RSS or Atom feed: {problem or 'no entries'}")
    if not parsed.get("version"):
        raise ReadError("not an RSS or Atom feed")
    language = _language(parsed.feed.get("language"), context)
    alt_texts = _media_descriptions(data)
    articles = []
    for index, entry in enumerate(parsed.entries):
        alt = alt_texts[index] if len(alt_texts) == len(parsed.entries) else ""
        try:
            articles.append(_entry_article(entry, language, alt, context.at(f"entry {index + 1}")))
        except ReadError as exc:
            context.reject(f"entry {index + 1}", str(exc))
    return articles


def _entry_article(entry: Any, language: str, image_alt: str, context: ReadContext) -> Article:
    url = entry.get("link") or ""
    guid = entry.get("id") or url
    title = one_line(entry.get("title") or "")
    if not guid or not title:
        raise ReadError("an entry needs an id or a link, and a title")
    published = _entry_time(entry, "published") or _entry_time(entry, "updated")
    if published is None:
        raise ReadError(f"{title[:60]!r} has no publication date")
    updated = _entry_time(entry, "updated") or published
    content = entry.get("content") or []
    html_source = content[0].get("value", "") if content else entry.get("summary", "")
    body_html, body_text = split_body(html_source or "")
    summary_html = entry.get("summary") or ""
    summary = one_line(html_to_text(summary_html)) if summary_html else summarize(body_text)
    section, tags = _categories(entry.get("tags") or [])
    image_url = _image(entry)
    article = Article(
        id=article_id(context.source, guid),
        guid=guid,
        source=context.source,
        url=url or guid,
        title=title,
        published=published,
        updated=max(updated, published),
        summary=summary,
        body_text=body_text,
        body_html=body_html,
        authors=tuple(
            one_line(author.get("name", ""))
            for author in entry.get("authors", [])
            if author.get("name")
        ),
        section=section or context.section,
        tags=tags,
        image_url=image_url,
        image_alt=image_alt,
        language=_language(entry.get("language"), context, default=language),
    )
    return vet(article, context)


def _entry_time(entry: Any, name: str) -> datetime | None:
    # dict.get, not entry.get: feedparser maps a missing `updated` to `published` with a
    # deprecation warning, and kabar wants to know which of the two the feed really gave.
    raw = dict.get(entry, name)
    if raw:
        for parse in (_rfc3339, parsedate_to_datetime):
            try:
                moment = parse(raw)
            except (TypeError, ValueError, IndexError):
                continue
            if moment is not None and moment.tzinfo is not None:
                return moment
    parsed = dict.get(entry, f"{name}_parsed")
    if not parsed:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _rfc3339(raw: str) -> datetime:
    return datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))


def _categories(tags: Iterable[Any]) -> tuple[str, tuple[str, ...]]:
    section, rest = "", []
    for tag in tags:
        term = one_line(tag.get("term") or tag.get("label") or "")
        scheme = (tag.get("scheme") or "").rstrip("/").rsplit("/", 1)[-1].lower()
        if not term:
            continue
        if not section and scheme in SECTION_SCHEMES:
            section = term
        else:
            rest.append(term)
    return section, tuple(dict.fromkeys(rest))


def _image(entry: Any) -> str:
    for media in entry.get("media_content", []):
        if media.get("url") and (
            media.get("medium") == "image" or "image" in media.get("type", "")
        ):
            return str(media["url"])
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and link.get("type", "").startswith("image/"):
            return str(link.get("href", ""))
    return ""


_MEDIA = "{http://search.yahoo.com/mrss/}"


def _media_descriptions(data: bytes) -> list[str]:
    """The image alt text (media:description) of each entry, in document order.

    feedparser folds media:description into the entry summary, so it is read here.
    """
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError:
        return []
    entries = root.iter(
        "item", "{http://www.w3.org/2005/Atom}entry", "{http://purl.org/rss/1.0/}item"
    )
    return [one_line(entry.findtext(f".//{_MEDIA}description") or "") for entry in entries]


def _language(value: Any, context: ReadContext, default: str | None = None) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip().split("-")[0].lower()
    return default or context.language


def _parse_json_feed(data: bytes, context: ReadContext) -> list[Article]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start})") from None
    check_nesting(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReadError(f"invalid JSON Feed at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(document, dict) or "jsonfeed.org/version" not in str(document.get("version")):
        raise ReadError("not a JSON Feed: no jsonfeed.org version")
    language = _language(document.get("language"), context)
    items = document.get("items") or []
    if not isinstance(items, list):
        raise ReadError("a JSON Feed's items must be a list")
    articles = []
    for index, item in enumerate(items):
        try:
            articles.append(_json_item(item, language, context.at(f"item {index + 1}")))
        except (ReadError, ValueError, TypeError, AttributeError) as exc:
            context.reject(f"item {index + 1}", str(exc))
    return articles


def _json_item(item: dict[str, Any], language: str, context: ReadContext) -> Article:
    guid = str(item.get("id") or item.get("url") or "")
    title = one_line(str(item.get("title") or ""))
    if not guid or not title:
        raise ReadError("an item needs an id and a title")
    published_text = item.get("date_published") or item.get("date_modified")
    if not published_text:
        raise ReadError(f"{title[:60]!r} has no date_published")
    published = _rfc3339(published_text)
    updated = _rfc3339(item["date_modified"]) if item.get("date_modified") else published
    body_html, body_text = split_body(
        str(item.get("content_html") or item.get("content_text") or "")
    )
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    tags = tuple(one_line(str(tag)) for tag in item.get("tags") or [])
    article = Article(
        id=article_id(context.source, guid),
        guid=guid,
        source=context.source,
        url=str(item.get("url") or guid),
        title=title,
        published=published,
        updated=max(updated, published),
        summary=one_line(str(item.get("summary") or "")) or summarize(body_text),
        body_text=body_text,
        body_html=body_html,
        authors=tuple(
            one_line(a["name"]) for a in authors if isinstance(a, dict) and a.get("name")
        ),
        section=context.section,
        tags=tags,
        image_url=str(item.get("image") or ""),
        language=_language(item.get("language"), context, default=language),
    )
    return vet(article, context)


# --- fetching --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    data: bytes | None  # None: not modified since the last fetch
    state: SourceState
    status: int


def fetch(
    url: str,
    state: SourceState,
    *,
    deadline: float = 60.0,
    max_bytes: int = MAX_FILE_BYTES,
) -> Fetched:
    """GET `url`, conditional on what the last answer said.

    The whole fetch, from connecting to the last byte, must end within `deadline`
    seconds (checked at every read; one read waits at most 30 s or the deadline), and the
    body is refused as soon as it passes `max_bytes`: a server that trickles bytes or
    sends without end can't hold ingest or fill memory.
    """
    headers = {"User-Agent": f"kabar/{__version__} (+feed ingest)"}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    until = time.monotonic() + deadline
    try:
        with httpx.stream(
            "GET", url, headers=headers, timeout=min(deadline, 30.0), follow_redirects=True
        ) as response:
            if response.status_code == 304:
                return Fetched(None, state, 304)
            if response.status_code >= 400:
                raise ReadError(f"HTTP {response.status_code} {response.reason_phrase}")
            body = _read_body(response, until, deadline, max_bytes)
    except httpx.TimeoutException:
        raise ReadError(f"cannot fetch: no answer within {min(deadline, 30.0):g} s") from None
    except httpx.HTTPError as exc:
        raise ReadError(f"cannot fetch: {exc}") from None
    new_state = SourceState(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    return Fetched(body, new_state, response.status_code)


def _read_body(response: httpx.Response, until: float, deadline: float, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ReadError(_too_large(int(declared), max_bytes))
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded: a gzip bomb counts at its full size
        size += len(chunk)
        if size > max_bytes:
            raise ReadError(_too_large(size, max_bytes, so_far=True))
        chunks.append(chunk)
        if time.monotonic() > until:
            raise ReadError(f"cannot fetch: not complete within the {deadline:g} s deadline")
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int, *, so_far: bool = False) -> str:
    limit = f"the {max_bytes / 2**20:.0f} MiB limit"
    if so_far:
        return f"body passed {limit} while downloading; the rest was not read"
    return f"body is {size / 2**20:.1f} MiB, over {limit}"
