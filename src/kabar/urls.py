"""Every public URL and path kabar writes or serves, in one place.

`Urls(config)` answers "where is it?" for everything a reader or subscriber follows:
feeds and their archive pages, the feed index, the web archive of sent issues, and the
signed unsubscribe (which doubles as preferences) and confirm links. The web app's route
patterns come from here too, so a link kabar mails and the route that answers it cannot
drift apart. Paths are relative to feed storage; URLs are absolute.
"""

from __future__ import annotations

import re

from kabar.config import Config
from kabar.render.document import MEDIA_TYPES, SUFFIXES, Format

__all__ = ["MEDIA_TYPES", "SUFFIXES", "Urls"]

# Route patterns of `kabar serve` (Starlette syntax).
FEEDS_PREFIX = "/feeds"
FEEDS_ROUTE = FEEDS_PREFIX + "/{path:path}"
UNSUBSCRIBE_ROUTE = "/unsubscribe/{token}"
SUBSCRIBE_ROUTE = "/subscribe"
CONFIRM_ROUTE = "/subscribe/confirm/{token}"
PREFERENCES_ROUTE = "/preferences/{token}"
PREFERENCES_EXPORT_ROUTE = PREFERENCES_ROUTE + "/export"

# Paths in feed storage.
INDEX_PATH = "index.html"
ARCHIVE_DIR = "archive"
MANIFEST = "issues.json"


def archive_slug(issue_key: str) -> str:
    """`harian:pembaca:2026-11-27` → `harian-pembaca-2026-11-27`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", issue_key).strip("-.") or "issue"


def feed_path(key: str, fmt: Format) -> str:
    """A feed's file: `semua.rss.xml`, `rubrik/dunia.json`."""
    return f"{key}{SUFFIXES[fmt]}"


def feed_archive_path(key: str, page: int, fmt: Format) -> str:
    """One RFC 5005 archive page of a feed: `semua/archive/3.atom.xml`."""
    return f"{key}/archive/{page}{SUFFIXES[fmt]}"


def archive_path(digest_id: str, issue_key: str) -> str:
    return f"{ARCHIVE_DIR}/{digest_id}/{archive_slug(issue_key)}.html"


def archive_page_name(issue_key: str) -> str:
    """The issue page's file name, relative to the digest's archive index."""
    return f"{archive_slug(issue_key)}.html"


def archive_index_path(digest_id: str) -> str:
    return f"{ARCHIVE_DIR}/{digest_id}/{INDEX_PATH}"


def manifest_path(digest_id: str) -> str:
    return f"{ARCHIVE_DIR}/{digest_id}/{MANIFEST}"


def issues_feed_path(digest_id: str, fmt: Format) -> str:
    return f"{ARCHIVE_DIR}/{digest_id}/issues{SUFFIXES[fmt]}"


def is_feed_file(path: str) -> bool:
    return path.endswith(tuple(SUFFIXES.values()))


class Urls:
    """The absolute URLs of one configuration."""

    def __init__(self, config: Config) -> None:
        # The web app's own base: web.base_url, else the site itself.
        self.web_base = (config.web.base_url or config.site.url).rstrip("/")
        # Where readers fetch feed storage: storage.feeds_url, else `kabar serve`'s /feeds.
        self.feeds_base = config.storage.feeds_url or f"{self.web_base}{FEEDS_PREFIX}"

    def feed_file(self, path: str) -> str:
        """The URL of a path in feed storage."""
        return f"{self.feeds_base}/{path}"

    def feed_index(self) -> str:
        return self.feed_file(INDEX_PATH)

    def archive_page(self, digest_id: str, issue_key: str) -> str:
        """Where a sent issue's page is served: the archive lives in feed storage."""
        return self.feed_file(archive_path(digest_id, issue_key))

    def archive_index(self, digest_id: str) -> str:
        return self.feed_file(archive_index_path(digest_id))

    def issues_feed(self, digest_id: str, fmt: Format) -> str:
        return self.feed_file(issues_feed_path(digest_id, fmt))

    def unsubscribe(self, token: str) -> str:
        return self.web_base + UNSUBSCRIBE_ROUTE.format(token=token)

    def preferences(self, token: str) -> str:
        return self.web_base + PREFERENCES_ROUTE.format(token=token)

    def confirm(self, token: str) -> str:
        return self.web_base + CONFIRM_ROUTE.format(token=token)
