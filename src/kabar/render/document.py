"""The feed document every format renders from, and what the formats share: media types,
file suffixes and date formats. Kept apart from the renderers so that each format module
depends on it and none on another.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Format = Literal["rss", "atom", "json"]
SUFFIXES: dict[Format, str] = {"rss": ".rss.xml", "atom": ".atom.xml", "json": ".json"}
MEDIA_TYPES: dict[Format, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# The `updated` time of a feed that has no items yet: fixed, so it is never now().
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/FFFF), and
# the C1 controls it discourages. lxml refuses the former outright.
_NOT_XML = re.compile("[^\t\n\r\u0020-\u007e\u0085\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Enclosure:
    """A media file whose length and type are known (RSS allows one per item)."""

    url: str
    length: int
    type: str


@dataclass(frozen=True, slots=True)
class FeedItem:
    guid: str  # RSS guid and JSON id, stable across edits
    atom_id: str  # an IRI derived from the guid
    url: str
    title: str
    published: datetime
    updated: datetime
    summary: str = ""  # plain text
    content_html: str = ""  # sanitised HTML
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    image_url: str = ""
    image_alt: str = ""
    enclosures: tuple[Enclosure, ...] = ()
    language: str = ""


@dataclass(frozen=True, slots=True)
class FeedDocument:
    atom_id: str
    title: str
    description: str
    language: str
    home_url: str  # the alternate (HTML) link
    self_urls: Mapping[Format, str]  # where each format of this document is published
    items: tuple[FeedItem, ...]  # newest first
    author: str = ""  # feed-level author (Atom needs one when an entry has none)
    logo_url: str = ""
    hub_url: str | None = None
    # RFC 5005: the newest archive page (subscription documents and archive pages), and
    # on archive pages the subscription document, per format.
    prev_archive: Mapping[Format, str] = field(default_factory=dict)
    current: Mapping[Format, str] = field(default_factory=dict)
    generator: str = "kabar"

    @property
    def is_archive(self) -> bool:
        return bool(self.current)

    @property
    def updated(self) -> datetime:
        """The newest entry's time: what `lastBuildDate` and Atom `updated` say."""
        return max((item.updated for item in self.items), default=EPOCH)


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


def is_xml_safe(text: str) -> bool:
    return not _NOT_XML.search(text)


# --- dates -----------------------------------------------------------------------------


def rfc822(moment: datetime) -> str:
    """`Sun, 11 Jul 2021 17:00:00 +0700`: English names, the moment's own offset, and no
    locale involved (feedgen's formatter switches the process-wide locale to do this)."""
    return email.utils.format_datetime(moment.replace(microsecond=0))


def rfc3339(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()
