"""Build feeds: select each feed's articles from the store, render every format, write
what changed to feed storage, cut RFC 5005 archive pages, and ping the WebSub hub.

Files in feed storage (FEED is the feed's `path`, or its id):

    FEED.rss.xml  FEED.atom.xml  FEED.json       the feed: the newest `limit` articles
    FEED/VALUE.rss.xml …                         with split_by, one feed per value
    FEED/archive/N.atom.xml …                    RFC 5005 archive pages, 1 = the oldest
    FEED/VALUE/archive/N.atom.xml …
    index.html                                   every feed, with autodiscovery links
    .kabar/archive/FEED[/VALUE].json             how far the archive goes (internal)

Archive pages hold `limit` articles each in publication order and are cut once full:
after that a page is never rendered again, so its bytes never change. The newest page
is linked from the feed by `prev-archive`, each page from the next one. An article
published before the newest page's last one but stored only later is not archived
(subscribers never see it in the feed either: it sorts below the newest items).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, func, or_, select

from kabar.config import Config, Feed
from kabar.deliver.storage import FeedStorage
from kabar.model import Article
from kabar.render.feed_index import IndexEntry, render_index
from kabar.render.feeds import (
    SUFFIXES,
    TAG_DATE,
    FeedDocument,
    Format,
    item_from_article,
    render,
)
from kabar.sources import slugify
from kabar.store import Store
from kabar.store.tables import article_facets, articles

log = logging.getLogger(__name__)

INDEX_PATH = "index.html"
STATE_FOLDER = ".kabar/archive"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FeedTarget:
    """One feed document and its archive: a configured feed, or one value of a split."""

    feed: Feed
    key: str  # storage path without suffix: "semua", "rubrik/dunia"
    title: str
    split_value: str | None = None

    def path(self, fmt: Format) -> str:
        return f"{self.key}{SUFFIXES[fmt]}"

    def archive_path(self, page: int, fmt: Format) -> str:
        return f"{self.key}/archive/{page}{SUFFIXES[fmt]}"


@dataclass(frozen=True)
class ArchiveState:
    pages: int = 0
    last_published: datetime | None = None  # the newest page's last article
    last_id: str = ""

    def to_json(self) -> bytes:
        last = self.last_published.isoformat() if self.last_published else None
        data = {"pages": self.pages, "last_published": last, "last_id": self.last_id}
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | None) -> ArchiveState:
        if not data:
            return cls()
        raw = json.loads(data)
        last = raw.get("last_published")
        return cls(
            pages=int(raw["pages"]),
            last_published=datetime.fromisoformat(last) if last else None,
            last_id=str(raw.get("last_id", "")),
        )


@dataclass
class BuildReport:
    documents: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    archive_pages: int = 0
    pinged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def describe(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        text = (
            f"feeds: {self.documents} feeds, {verb} {len(self.written)} files "
            f"({self.archive_pages} new archive pages), {self.unchanged} unchanged"
        )
        return text + (f", hub notified of {len(self.pinged)}" if self.pinged else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "written": self.written, "unchanged": self.unchanged,
            "archive_pages": self.archive_pages, "pinged": self.pinged,
            "warnings": self.warnings, "dry_run": self.dry_run,
        }  # fmt: skip


def feeds_base_url(config: Config) -> str:
    """Where readers fetch feed storage: storage.feeds_url, else `kabar serve`'s /feeds."""
    if config.storage.feeds_url:
        return config.storage.feeds_url
    return f"{(config.web.base_url or config.site.url).rstrip('/')}/feeds"


def feed_targets(store: Store, feed: Feed) -> list[FeedTarget]:
    base = feed.path or feed.id
    if feed.split_by is None:
        return [FeedTarget(feed, base, feed.title)]
    values = store.facet_values(feed.split_by, sources=feed.sources)
    chosen = {"section": feed.sections, "tag": feed.tags}.get(feed.split_by)
    if chosen:
        values = [value for value in values if value in chosen]
    slugs = _unique_slugs(values)
    return [FeedTarget(feed, f"{base}/{slugs[v]}", f"{feed.title}: {v}", v) for v in values]


def _unique_slugs(values: Sequence[str]) -> dict[str, str]:
    """A path-safe slug per value; values whose slugs clash get a hash suffix."""
    slugs = {value: slugify(value, max_length=60) for value in values}
    counts: dict[str, int] = {}
    for slug in slugs.values():
        counts[slug] = counts.get(slug, 0) + 1
    for value, slug in slugs.items():
        if counts[slug] > 1 or slug == "archive":
            slugs[value] = f"{slug}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"
    return slugs


# --- selecting articles ----------------------------------------------------------------


def _having_facet(kind: str, values: Sequence[str]) -> ColumnElement[bool]:
    matching = select(article_facets.c.article_id).where(
        article_facets.c.facet == kind, article_facets.c.value.in_(list(values))
    )
    return articles.c.id.in_(matching)


def _conditions(target: FeedTarget) -> list[ColumnElement[bool]]:
    feed = target.feed
    conditions: list[ColumnElement[bool]] = []
    if feed.sources is not None:
        conditions.append(articles.c.source.in_(feed.sources))
    for kind, values in (("section", feed.sections), ("tag", feed.tags)):
        if values and feed.split_by != kind:
            conditions.append(_having_facet(kind, values))
    if target.split_value is not None and feed.split_by is not None:
        conditions.append(_having_facet(feed.split_by, [target.split_value]))
    return conditions


def newest_articles(store: Store, target: FeedTarget) -> list[Article]:
    query = (
        select(articles)
        .where(*_conditions(target))
        .order_by(articles.c.published.desc(), articles.c.id)
        .limit(target.feed.limit)
    )
    return store.query(query)


def _after(state: ArchiveState) -> list[ColumnElement[bool]]:
    if state.last_published is None:
        return []
    moment, last_id = state.last_published, state.last_id
    return [
        or_(
            articles.c.published > moment,
            and_(articles.c.published == moment, articles.c.id > last_id),
        )
    ]


def _unarchived_count(store: Store, target: FeedTarget, state: ArchiveState, cap: int) -> int:
    ids = select(articles.c.id).where(*_conditions(target), *_after(state)).limit(cap)
    with store.engine.connect() as connection:
        counted = select(func.count()).select_from(ids.subquery())
        return int(connection.execute(counted).scalar_one())


def _next_page(store: Store, target: FeedTarget, state: ArchiveState) -> list[Article]:
    query = (
        select(articles)
        .where(*_conditions(target), *_after(state))
        .order_by(articles.c.published, articles.c.id)
        .limit(target.feed.limit)
    )
    return store.query(query)


# --- building --------------------------------------------------------------------------


@dataclass
class _Build:
    config: Config
    store: Store
    storage: FeedStorage
    report: BuildReport
    base_url: str
    dry_run: bool

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def put(self, path: str, data: bytes) -> bool:
        if self.dry_run:
            changed = self.storage.read(path) != data
        else:
            changed = self.storage.write(path, data)
        if changed:
            self.report.written.append(path)
        else:
            self.report.unchanged += 1
        return changed

    def document(
        self, target: FeedTarget, chosen: Sequence[Article], *, page: int = 0, newest_page: int = 0
    ) -> FeedDocument:
        """The feed (page 0) or one of its archive pages."""
        site, formats = self.config.site, target.feed.formats
        own = {fmt: self.url(target.path(fmt)) for fmt in formats}
        previous = page - 1 if page else newest_page
        return FeedDocument(
            atom_id=f"tag:{urlsplit(site.url).hostname},{TAG_DATE}:feed/{target.key}",
            title=target.title,
            description=target.feed.description or site.description,
            language=site.language,
            home_url=site.url,
            self_urls={f: self.url(target.archive_path(page, f)) for f in formats} if page else own,
            items=tuple(item_from_article(a, site_url=site.url) for a in chosen),
            author=site.title,
            logo_url=site.logo_url,
            hub_url=self.config.web.websub_hub,
            prev_archive={f: self.url(target.archive_path(previous, f)) for f in formats}
            if previous
            else {},
            current=own if page else {},
        )


def build_feeds(
    config: Config,
    store: Store,
    storage: FeedStorage,
    feed_ids: Sequence[str] = (),
    *,
    dry_run: bool = False,
    ping: bool = True,
    progress: Progress | None = None,
) -> BuildReport:
    """Render the chosen feeds (all by default) and store what changed."""
    unknown = sorted(set(feed_ids) - {feed.id for feed in config.feeds})
    if unknown:
        raise KeyError(f"unknown feed id(s): {', '.join(unknown)}")
    build = _Build(
        config, store, storage, BuildReport(dry_run=dry_run), feeds_base_url(config), dry_run
    )
    every = {feed.id: feed_targets(store, feed) for feed in config.feeds}
    targets = [
        t for feed_id, ts in every.items() if not feed_ids or feed_id in feed_ids for t in ts
    ]
    changed_feeds: list[str] = []
    for done, target in enumerate(targets, 1):
        changed_feeds += _build_target(build, target)
        if progress:
            progress(done, len(targets))
    build.report.documents = len(targets)
    build.put(INDEX_PATH, _index(build, [t for ts in every.values() for t in ts]))
    hub = config.web.websub_hub
    if hub and ping and changed_feeds and not dry_run:
        from kabar.deliver.websub import ping_hub

        topics = [build.url(path) for path in changed_feeds]
        failures = ping_hub(hub, topics)
        build.report.warnings += failures
        build.report.pinged = [t for t in topics if not any(t in f for f in failures)]
    log.info("%s", build.report.describe())
    for warning in build.report.warnings:
        log.warning("%s", warning)
    return build.report


def _build_target(build: _Build, target: FeedTarget) -> list[str]:
    """Write the target's new archive pages, then its feed; return the feed files that
    changed."""
    state = _extend_archive(build, target) if target.feed.archive else ArchiveState()
    doc = build.document(target, newest_articles(build.store, target), newest_page=state.pages)
    return [
        target.path(f) for f in target.feed.formats if build.put(target.path(f), render(doc, f))
    ]


def _extend_archive(build: _Build, target: FeedTarget) -> ArchiveState:
    """Cut every archive page that has filled up since the last build."""
    state_path = f"{STATE_FOLDER}/{target.key}.json"
    state = start = ArchiveState.from_json(build.storage.read(state_path))
    size = target.feed.limit
    while _unarchived_count(build.store, target, state, size) >= size:
        chosen = _next_page(build.store, target, state)
        page = state.pages + 1
        doc = build.document(target, chosen[::-1], page=page)
        for fmt in target.feed.formats:
            build.put(target.archive_path(page, fmt), render(doc, fmt))
        build.report.archive_pages += 1
        state = ArchiveState(page, chosen[-1].published, chosen[-1].id)
    if state != start and not build.dry_run:
        build.storage.write(state_path, state.to_json())
    return state


def _index(build: _Build, targets: Sequence[FeedTarget]) -> bytes:
    entries = [
        IndexEntry(t.title, {fmt: build.url(t.path(fmt)) for fmt in t.feed.formats})
        for t in targets
    ]
    site = build.config.site
    return render_index(site.title, site.language, entries)
