"""The article, as every pipeline stage sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any


@dataclass(frozen=True, slots=True)
class RelatedLink:
    """A related item the publisher chose by hand, like a "Berita terkait" entry."""

    title: str
    url: str = ""
    summary: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url, "summary": self.summary}


@dataclass(frozen=True, slots=True)
class Article:
    """One news article.

    `published` and `updated` are timezone-aware and keep the offset the source gave
    (`+07:00` for WIB), so feeds and digests can show the publisher's own local time.
    """

    id: str
    guid: str
    source: str
    url: str
    title: str
    published: datetime
    updated: datetime
    summary: str = ""
    body_text: str = ""
    body_html: str = ""
    authors: tuple[str, ...] = ()
    credit: str = ""
    section: str = ""
    tags: tuple[str, ...] = ()
    image_url: str = ""
    image_alt: str = ""
    language: str = ""
    dateline: str = ""
    cross_links: tuple[str, ...] = ()
    related: tuple[RelatedLink, ...] = ()
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        for name in ("published", "updated"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self))

    def with_changes(self, **changes: Any) -> Article:
        """A copy with `changes` applied and the content hash recomputed."""
        return replace(self, content_hash="", **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every stored field, JSON-ready (times as RFC 3339 with their own offset)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif f.name == "related":
                value = [link.to_dict() for link in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


# Fields that make up the content: `updated` and the hash itself are outcomes of a change,
# and `id`/`guid`/`source` are identity, so none of them count.
_HASHED_FIELDS = (
    "url", "title", "published", "summary", "body_text", "body_html", "authors", "credit",
    "section", "tags", "image_url", "image_alt", "language", "dateline", "cross_links", "related",
)  # fmt: skip


def content_hash(article: Article) -> str:
    payload = {name: getattr(article, name) for name in _HASHED_FIELDS}
    payload["published"] = article.published.isoformat()
    payload["related"] = [link.to_dict() for link in article.related]
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=list)
    return hashlib.sha256(encoded.encode()).hexdigest()


def article_id(source: str, guid: str) -> str:
    """A short stable id: the same source and guid always give the same id."""
    return hashlib.sha256(f"{source}\x1f{guid}".encode()).hexdigest()[:16]


def url_key(url: str) -> str:
    """What the store keeps unique per article: one canonical URL, one article."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)


def with_offset(utc_moment: datetime, minutes: int) -> datetime:
    """Show a UTC moment in the fixed offset it was published with."""
    if utc_moment.tzinfo is None:
        utc_moment = utc_moment.replace(tzinfo=UTC)
    return utc_moment.astimezone(timezone(timedelta(minutes=minutes)))


@dataclass(frozen=True, slots=True)
class Recipient:
    """One subscriber, as a digest message addresses them."""

    subscriber_id: str
    email: str
    name: str = ""
    locale: str = ""
    unsubscribe_url: str = ""  # https, one-click (RFC 8058); carries the subscriber's token
    unsubscribe_mailto: str = ""
    preferences_url: str = ""
    variant: str = ""  # the issue variant the ledger gave them ("": by locale)


def message_id(issue_key: str, subscriber_id: str, domain: str) -> str:
    """The Message-ID of one delivery: the same on every retry, so a resend is recognisable."""
    digest = hashlib.sha256(f"{issue_key}|{subscriber_id}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"
