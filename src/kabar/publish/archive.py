"""Publish a sent issue's archive: its page, the digest's index and manifest, and the
digest's "issues" feeds, into feed storage beside the feeds."""

from __future__ import annotations

from collections.abc import Callable

from kabar.config import Config
from kabar.render.archive import (
    ISSUES_FEED_FORMATS,
    ArchiveEntry,
    archive_pages,
    issues_feed,
    read_manifest,
)
from kabar.render.feeds import render_formats
from kabar.render.view import IssueView
from kabar.urls import issues_feed_path, manifest_path


def publish_archive(
    config: Config,
    view: IssueView,
    *,
    read: Callable[[str], bytes | None],
    write: Callable[[str, bytes], object],
) -> list[ArchiveEntry]:
    """Write a sent issue's archive page, the digest's index and manifest, and its
    "issues" RSS and Atom feeds through `read`/`write` (feed storage paths); return the
    digest's entries, newest first."""
    history = read_manifest(read(manifest_path(view.digest_id)))
    pages = archive_pages(config, view, history)
    entries = read_manifest(pages[manifest_path(view.digest_id)])
    feed = issues_feed(config, view.digest_id, entries)
    for fmt, data in render_formats(feed, ISSUES_FEED_FORMATS).items():
        pages[issues_feed_path(view.digest_id, fmt)] = data
    for path, data in pages.items():
        write(path, data)
    return entries
