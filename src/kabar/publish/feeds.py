"""Build feeds: select each feed's articles from the store, render every format, write
what changed to feed storage, cut RFC 5005 archive pages, and ping the WebSub hub.

Files in feed storage (FEED is the feed's `path`, or its id):

    FEED.rss.xml  FEED.atom.xml  FEED.json       the feed: the newest `limit` articles
    FEED/VALUE.rss.xml …                         with split_by, one feed per value
    FEED/archive/N.atom.xml …                    RFC 5005 archive pages, 1 = the oldest
    FEED/VALUE/archive/N.atom.xml …
    index.html                                   every feed, with autodiscovery links
    .kabar/feeds.json                            archive positions, fingerprints (internal)

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
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kabar.config import Config, Feed
from kabar.model import Article
from kabar.observe.metrics import FEED_BUILD_SECONDS
from kabar.publish.storage import FeedStorage
from kabar.render.document import FeedDocument, Format
from kabar.render.feed_index import IndexEntry, render_index
from kabar.render.feeds import TAG_DATE, item_from_article, render_formats
from kabar.sources import slugify
from kabar.store import Store
from kabar.store.feeds import (
    FeedSelection,
    Key,
    facet_values,
    feed_articles,
    feed_keys,
    feed_selection,
)
from kabar.urls import INDEX_PATH, Urls, feed_archive_path, feed_path

log = logging.getLogger(__name__)

STATE_PATH = ".kabar/feeds.json"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FeedTarget:
    """One feed document and its archive: a configured feed, or one value of a split."""

    feed: Feed
    key: str  # storage path without suffix: "semua", "rubrik/dunia"
    title: str
    split_value: str | None = None

    def path(self, fmt: Format) -> str:
        return feed_path(self.key, fmt)

    def archive_path(self, page: int, fmt: Format) -> str:
        return feed_archive_path(self.key, page, fmt)


@dataclass(frozen=True)
class FeedState:
    """What the last build left: how far the archive goes, and a fingerprint of what
    the feed was rendered from (unchanged: nothing to render)."""

    pages: int = 0
    last_published: datetime | None = None  # the newest archive page's last article
    last_id: str = ""
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "last_published": self.last_published.isoformat() if self.last_published else None,
            "last_id": self.last_id,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeedState:
        last = raw.get("last_published")
        return cls(
            pages=int(raw.get("pages", 0)),
            last_published=datetime.fromisoformat(last) if last else None,
            last_id=str(raw.get("last_id", "")),
            fingerprint=str(raw.get("fingerprint", "")),
        )


def _read_states(storage: FeedStorage) -> dict[str, FeedState]:
    data = storage.read(STATE_PATH)
    raw = json.loads(data) if data else {}
    return {key: FeedState.from_dict(value) for key, value in raw.items()}


def _write_states(storage: FeedStorage, states: dict[str, FeedState]) -> None:
    data = {key: states[key].to_dict() for key in sorted(states)}
    storage.write(STATE_PATH, (json.dumps(data, indent=1) + "\n").encode())


@dataclass
class BuildReport:
    documents: int = 0
    skipped: int = 0  # feeds whose articles and settings had not changed
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    archive_pages: int = 0
    pinged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def describe(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        text = (
            f"feeds: {self.documents} feeds ({self.skipped} unchanged since the last build), "
            f"{verb} {len(self.written)} files ({self.archive_pages} new archive pages), "
            f"{self.unchanged} files unchanged"
        )
        return text + (f", hub notified of {len(self.pinged)}" if self.pinged else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "skipped": self.skipped, "written": self.written,
            "unchanged": self.unchanged, "archive_pages": self.archive_pages,
            "pinged": self.pinged, "warnings": self.warnings, "dry_run": self.dry_run,
        }  # fmt: skip


def feed_targets(store: Store, feed: Feed) -> list[FeedTarget]:
    base = feed.path or feed.id
    if feed.split_by is None:
        return [FeedTarget(feed, base, feed.title)]
    values = split_values(store, feed)
    slugs = _unique_slugs(values)
    return [FeedTarget(feed, f"{base}/{slugs[v]}", f"{feed.title}: {v}", v) for v in values]


def split_values(store: Store, feed: Feed) -> list[str]:
    """The distinct values of the feed's split_by facet among its sources (only the
    chosen ones when the feed names sections or tags of that kind)."""
    assert feed.split_by is not None
    chosen = {"section": feed.sections, "tag": feed.tags}.get(feed.split_by) or []
    values = facet_values(store, feed.split_by, sources=feed.sources)
    return [v for v in values if not chosen or v in chosen]


def _unique_slugs(values: Sequence[str]) -> dict[str, str]:
    """A path-safe slug per value; values whose slugs clash get a hash suffix."""
    slugs = {value: slugify(value, max_length=60) for value in values}
    counts = Counter(slugs.values())
    return {
        value: f"{slug}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"
        if counts[slug] > 1
        else slug
        for value, slug in slugs.items()
    }


# --- selecting articles ----------------------------------------------------------------


def _selection(target: FeedTarget) -> FeedSelection:
    feed = target.feed
    facets = [
        (k, v) for k, v in (("section", feed.sections), ("tag", feed.tags)) if k != feed.split_by
    ]
    split = None
    if target.split_value is not None and feed.split_by is not None:
        split = (feed.split_by, target.split_value)
    return feed_selection(sources=feed.sources, facets=facets, split=split)


def newest_articles(store: Store, target: FeedTarget) -> list[Article]:
    return feed_articles(store, feed_keys(store, _selection(target).newest(target.feed.limit)))


# --- building --------------------------------------------------------------------------


@dataclass
class _Build:
    config: Config
    store: Store
    storage: FeedStorage
    report: BuildReport
    urls: Urls
    dry_run: bool
    force: bool
    states: dict[str, FeedState] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.urls.feed_file(path)

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
    force: bool = False,
    ping: bool = True,
    progress: Progress | None = None,
) -> BuildReport:
    """Render the chosen feeds (all by default) and store what changed.

    A feed whose newest articles (ids and content hashes) and settings match the last
    build, and whose files are all still in storage, is not rendered again, unless `force`.
    """
    unknown = sorted(set(feed_ids) - {feed.id for feed in config.feeds})
    if unknown:
        raise KeyError(f"unknown feed id(s): {', '.join(unknown)}")
    report = BuildReport(dry_run=dry_run)
    build = _Build(config, store, storage, report, Urls(config), dry_run, force)
    build.states = _read_states(storage)
    every = {feed.id: feed_targets(store, feed) for feed in config.feeds}
    targets = [
        t for feed_id in every if not feed_ids or feed_id in feed_ids for t in every[feed_id]
    ]
    changed_feeds: list[str] = []
    updated: dict[str, list[str]] = {}  # feed id: its changed documents' URLs (webhooks)
    for done, target in enumerate(targets, 1):
        with FEED_BUILD_SECONDS.labels(target.feed.id).time():
            changed = _build_target(build, target)
        changed_feeds += changed
        if changed:
            updated.setdefault(target.feed.id, []).extend(build.url(path) for path in changed)
        if progress:
            progress(done, len(targets))
    report.documents = len(targets)
    build.put(INDEX_PATH, _index(build, [t for ts in every.values() for t in ts]))
    if not dry_run:
        _write_states(storage, build.states)
        _tell_updated(store, updated)
    hub = config.web.websub_hub
    if hub and ping and changed_feeds and not dry_run:
        from kabar.publish.websub import ping_hub

        report.pinged, failures = ping_hub(hub, [build.url(path) for path in changed_feeds])
        report.warnings += failures
    # The caller reports the summary once: the CLI prints it, `kabar run` logs it.
    log.debug("%s", report.describe())
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _build_target(build: _Build, target: FeedTarget) -> list[str]:
    """Cut the target's new archive pages, then render its feed unless nothing it is
    made of changed; return the feed files that changed."""
    start = build.states.get(target.key, FeedState())
    state = _extend_archive(build, target, start) if target.feed.archive else FeedState()
    keys = feed_keys(build.store, _selection(target).newest(target.feed.limit))
    settings = build.document(target, (), newest_page=state.pages)
    fingerprint = _fingerprint(settings, keys)
    changed: list[str] = []
    paths = [target.path(fmt) for fmt in target.feed.formats]
    unchanged = fingerprint == start.fingerprint and not build.force
    if unchanged and all(build.storage.stat(path) for path in paths):
        build.report.skipped += 1
    else:
        site_url = build.config.site.url
        items = [item_from_article(a, site_url=site_url) for a in feed_articles(build.store, keys)]
        doc = replace(settings, items=tuple(items))
        rendered = render_formats(doc, target.feed.formats)
        changed = [
            target.path(f) for f, data in rendered.items() if build.put(target.path(f), data)
        ]
    build.states[target.key] = replace(state, fingerprint=fingerprint)
    return changed


def _extend_archive(build: _Build, target: FeedTarget, state: FeedState) -> FeedState:
    """Cut every archive page that has filled up since the last build."""
    size, selection = target.feed.limit, _selection(target)
    while len(keys := _next_page(build.store, selection, state, size)) >= size:
        chosen = feed_articles(build.store, keys)
        page = state.pages + 1
        doc = build.document(target, chosen[::-1], page=page)
        for fmt, data in render_formats(doc, target.feed.formats).items():
            build.put(target.archive_path(page, fmt), data)
        build.report.archive_pages += 1
        state = replace(
            state, pages=page, last_published=chosen[-1].published, last_id=chosen[-1].id
        )
    return state


def _next_page(store: Store, selection: FeedSelection, state: FeedState, size: int) -> list[Key]:
    return feed_keys(store, selection.oldest_after(state.last_published, state.last_id, size))


def _tell_updated(store: Store, updated: dict[str, list[str]]) -> None:
    """A feed.updated webhook event per feed whose documents changed."""
    if not updated:
        return
    from kabar.hooks.events import record_event

    with store.engine.begin() as connection:
        for feed_id, urls in updated.items():
            record_event(connection, "feed.updated", {"feed": feed_id, "urls": urls})


def _fingerprint(settings: FeedDocument, keys: Sequence[Key]) -> str:
    """What a feed is rendered from: its settings (links, titles, archive page), its
    articles (ids and content hashes), and the rendering code itself."""
    digest = hashlib.sha256(_renderer_signature().encode())
    digest.update(repr(settings).encode())
    for article_id, content_hash in keys:
        digest.update(f"\n{article_id} {content_hash}".encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _renderer_signature() -> str:
    """kabar's version and a hash of the rendering modules' source, so that a changed
    renderer re-renders every feed even without a version bump."""
    import kabar
    from kabar.render import document, rss_atom
    from kabar.render import feeds as feeds_module

    digest = hashlib.sha256(kabar.__version__.encode())
    for module in (document, feeds_module, rss_atom, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def _index(build: _Build, targets: Sequence[FeedTarget]) -> bytes:
    entries = [
        IndexEntry(t.title, {fmt: build.url(t.path(fmt)) for fmt in t.feed.formats})
        for t in targets
    ]
    site = build.config.site
    return render_index(site.title, site.language, entries)
