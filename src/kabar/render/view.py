"""What a template sees of an issue: the issue, its cards and their related news.

Views are plain data. An `IssueView` round-trips through JSON (to_dict/from_dict), so
the archive renders a sent issue from what was stored, without the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kabar.render.locale import Formatter


@dataclass(frozen=True)
class RelatedView:
    title: str
    url: str
    summary: str
    published: datetime | None


@dataclass(frozen=True)
class CardView:
    article_id: str
    title: str
    url: str
    section: str
    summary: str
    published: datetime
    image_url: str = ""
    image_alt: str = ""
    credit: str = ""
    related: tuple[RelatedView, ...] = ()


@dataclass(frozen=True)
class IssueView:
    """One issue as its templates see it; JSON round-trips through to_dict/from_dict so
    the archive can render a sent issue without the store."""

    issue_key: str
    digest_id: str
    subject: str
    preheader: str
    issue_time: datetime
    language: str
    timezone: str
    site_title: str
    site_url: str
    list_name: str
    archive_url: str
    logo_url: str = ""
    contact: str = ""
    cards: tuple[CardView, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IssueView:
        values = dict(data)
        values["issue_time"] = datetime.fromisoformat(values["issue_time"])
        values["cards"] = tuple(_card_from_dict(card) for card in values["cards"])
        return cls(**values)

    def formatter(self) -> Formatter:
        return Formatter(self.language, ZoneInfo(self.timezone))


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    return value


def _card_from_dict(data: Mapping[str, Any]) -> CardView:
    values = dict(data)
    values["published"] = datetime.fromisoformat(values["published"])
    values["related"] = tuple(
        RelatedView(**{**item, "published": _optional_time(item["published"])})
        for item in values["related"]
    )
    return CardView(**values)


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
