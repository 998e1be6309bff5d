"""Publish a sent issue's archive: its page, the digest's index and manifest, and the
digest's "issues" feeds, into feed storage beside the feeds."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kabar.config import Config
from kabar.publish.storage import FeedStorage
from kabar.render.archive import (
    ISSUES_FEED_FORMATS,
    ArchiveEntry,
    archive_pages,
    issues_feed,
    read_manifest,
)
from kabar.render.feeds import render_formats
from kabar.render.templates import RenderError
from kabar.render.view import IssueView
from kabar.urls import issues_feed_path, manifest_path

log = logging.getLogger(__name__)


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


class ArchiveSent:
    """The delivery hook that puts each sent issue on the web archive and its issues
    feed. The mail is out whatever happens here, so a failure is logged, not raised."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __call__(self, key: str, view: IssueView) -> None:
        storage = FeedStorage.from_config(self.config)
        try:
            publish_archive(self.config, view, read=storage.read, write=storage.write)
        except (OSError, RenderError) as exc:
            log.error("%s: sent, but its archive page could not be written: %s", key, exc)
            return
        log.info("%s: archived at %s", key, view.archive_url)
