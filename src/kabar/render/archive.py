"""The web archive of sent issues: one render of the issue, three outputs.

Each sent issue becomes a web page (`archive.html.j2`) under `archive/<digest>/`, listed
on an index page (`archive_index.html.j2`) and in `issues.json`, the manifest the next
issue's index is built from. The pages come from the issue's stored view (the same
articles, related news and words as the email), not from the store, so an archive page
always shows what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from kabar.config import Config
from kabar.render.document import FeedDocument, FeedItem, Format
from kabar.render.templates import (
    RenderError,
    describe_template_error,
    environment,
    template_paths,
)
from kabar.render.view import IssueView
from kabar.urls import Urls, archive_index_path, archive_page_name, archive_path, manifest_path

PAGE_TEMPLATE = "archive.html.j2"
INDEX_TEMPLATE = "archive_index.html.j2"


@dataclass(frozen=True)
class ArchiveEntry:
    """One line of a digest's archive index (and of its issues feed)."""

    issue_key: str
    subject: str
    preheader: str
    issue_time: datetime
    url: str
    page: str  # file name next to index.html
    articles: int

    @classmethod
    def of(cls, view: IssueView) -> ArchiveEntry:
        return cls(
            issue_key=view.issue_key,
            subject=view.subject,
            preheader=view.preheader,
            issue_time=view.issue_time,
            url=view.archive_url,
            page=archive_page_name(view.issue_key),
            articles=len(view.cards),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "issue_time": self.issue_time.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchiveEntry:
        return cls(**{**data, "issue_time": datetime.fromisoformat(data["issue_time"])})


def merge_entries(history: Iterable[ArchiveEntry], entry: ArchiveEntry) -> list[ArchiveEntry]:
    """History with `entry` added (or replaced, for a re-sent key), newest first."""
    kept = {item.issue_key: item for item in history}
    kept[entry.issue_key] = entry
    return sorted(kept.values(), key=lambda item: (item.issue_time, item.issue_key), reverse=True)


def archive_pages(
    config: Config, view: IssueView, history: Sequence[ArchiveEntry] = ()
) -> dict[str, bytes]:
    """Storage path → bytes: the issue's page, the digest's index, and the manifest.

    `history` is the earlier entries (read them back with `read_manifest`).
    """
    digest = config.digest(view.digest_id)
    entries = merge_entries(history, ArchiveEntry.of(view))
    formatter = view.formatter()
    page = _template(config, digest.templates.archive, PAGE_TEMPLATE, formatter)
    index = _template(config, digest.templates.archive_index, INDEX_TEMPLATE, formatter)
    try:
        accent = digest.templates.accent_color
        page_html = page.render(issue=view, index_url="index.html", accent=accent)
        index_html = index.render(
            entries=entries, digest_id=view.digest_id, list_name=view.list_name,
            site_title=view.site_title, site_url=view.site_url, language=view.language,
            accent=accent,
        )  # fmt: skip
    except jinja2.TemplateError as exc:
        raise RenderError(
            f"archive of digest {view.digest_id}: {describe_template_error(exc)}"
        ) from None
    manifest = json.dumps([entry.to_dict() for entry in entries], ensure_ascii=False, indent=1)
    return {
        archive_path(view.digest_id, view.issue_key): page_html.encode(),
        archive_index_path(view.digest_id): index_html.encode(),
        manifest_path(view.digest_id): manifest.encode() + b"\n",
    }


def read_manifest(data: bytes | None) -> list[ArchiveEntry]:
    """The entries of an `issues.json` written by archive_pages (none if absent)."""
    if not data:
        return []
    return [ArchiveEntry.from_dict(item) for item in json.loads(data)]


def _template(
    config: Config, configured: str | None, default: str, formatter: Any
) -> jinja2.Template:
    search_path, name = template_paths(config, configured, default)
    try:
        return environment(search_path, formatter, html=True).get_template(name)
    except jinja2.TemplateError as exc:
        raise RenderError(describe_template_error(exc)) from None


# --- the "issues" feed ----------------------------------------------------------------

ISSUES_FEED_FORMATS: tuple[Format, ...] = ("rss", "atom")
ISSUES_FEED_LIMIT = 50


def issues_feed(config: Config, digest_id: str, entries: Sequence[ArchiveEntry]) -> FeedDocument:
    """The digest's sent issues as a feed, newest first: one item per issue."""
    digest = config.digest(digest_id)
    urls = Urls(config)
    items = tuple(
        FeedItem(
            guid=entry.url,
            atom_id=entry.url,
            url=entry.url,
            title=entry.subject,
            published=entry.issue_time.replace(microsecond=0),
            updated=entry.issue_time.replace(microsecond=0),
            summary=entry.preheader,
            language=digest.locale or config.site.language,
        )
        for entry in entries[:ISSUES_FEED_LIMIT]
    )
    return FeedDocument(
        atom_id=urls.archive_index(digest_id),
        title=f"{config.site.title}: {config.mailing_list(digest.list_id).name or digest.id}",
        description=config.site.description or config.site.title,
        language=digest.locale or config.site.language,
        home_url=urls.archive_index(digest_id),
        self_urls={fmt: urls.issues_feed(digest_id, fmt) for fmt in ISSUES_FEED_FORMATS},
        items=items,
        author=config.site.title,
        hub_url=config.web.websub_hub,
    )
