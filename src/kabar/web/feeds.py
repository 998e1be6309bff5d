"""Serve feed storage: feeds, archive pages and the index, cheap to poll.

Every file gets a strong ETag (a hash of its bytes; the gzip form has its own) and
Last-Modified (the stored file's time, which only moves when the bytes change), and a
bodyless 304 when If-None-Match matches or, without it, If-Modified-Since is not older.
Feeds carry HTTP Link headers for their self URL and the WebSub hub, so readers
discover both whatever the format.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from threading import Lock

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.config import Config
from kabar.publish.storage import (
    FeedStorage,
    StoragePathError,
    StoredFile,
    check_path,
    content_type_for,
)
from kabar.urls import FEEDS_PREFIX, FEEDS_ROUTE, INDEX_PATH, Urls, is_feed_file

GZIP_MIN_BYTES = 512
FEED_CACHE_CONTROL = "public, max-age=300"
ARCHIVE_CACHE_CONTROL = "public, max-age=31536000, immutable"
_CACHED_FILES = 256
_MAX_PATH = 1024  # characters of a path under /feeds/
_MAX_NAME = 255  # bytes of one name in it (the usual file system limit)


@dataclass(frozen=True)
class _Representation:
    stored: StoredFile  # what storage said when it was read: a change means a new read
    modified: datetime  # to the second, as HTTP dates go
    body: bytes
    etag: str
    gzipped: bytes | None
    gzip_etag: str


def routes(config: Config, storage: FeedStorage) -> list[BaseRoute]:
    files = FeedFiles(storage, Urls(config).feeds_base, config.web.websub_hub)
    return [
        Route(
            "/", lambda _: RedirectResponse(f"{FEEDS_PREFIX}/", status_code=307), methods=["GET"]
        ),
        Route(
            FEEDS_PREFIX,
            lambda _: RedirectResponse(f"{FEEDS_PREFIX}/", status_code=307),
            methods=["GET"],
        ),
        Route(FEEDS_ROUTE, files.serve, methods=["GET"]),
    ]


class FeedFiles:
    def __init__(self, storage: FeedStorage, public_url: str, hub_url: str | None) -> None:
        self.storage = storage
        self.public_url = public_url.rstrip("/")
        self.hub_url = hub_url
        self._cache: OrderedDict[str, _Representation] = OrderedDict()
        self._lock = Lock()

    # A plain function: Starlette runs it in a thread, so storage reads never block the loop.
    def serve(self, request: Request) -> Response:
        path = request.path_params["path"]
        if path == "" or path.endswith("/"):
            path += INDEX_PATH
        try:
            if not _servable(path):
                raise StoragePathError(path)
            check_path(path)
            found = self._load(path)
        except (StoragePathError, OSError, ValueError):
            # A name the file system refuses (too long, a file used as a folder) is as
            # missing as any other: never a 500.
            found = None
        if found is None:
            return PlainTextResponse("not found\n", status_code=404)
        use_gzip = found.gzipped is not None and _accepts_gzip(request)
        etag = found.gzip_etag if use_gzip else found.etag
        headers = {
            "ETag": etag,
            "Last-Modified": email.utils.format_datetime(found.modified, usegmt=True),
            "Cache-Control": ARCHIVE_CACHE_CONTROL if "/archive/" in path else FEED_CACHE_CONTROL,
            "Vary": "Accept-Encoding",
        }
        links = self._links(path)
        if links:
            headers["Link"] = links
        if _not_modified(request, found, (found.etag, found.gzip_etag)):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        body = found.gzipped if use_gzip and found.gzipped is not None else found.body
        return Response(body, headers=headers, media_type=content_type_for(path))

    def _links(self, path: str) -> str:
        if not is_feed_file(path):
            return ""
        links = [f'<{self.public_url}/{path}>; rel="self"']
        if self.hub_url and "/archive/" not in path:
            links.append(f'<{self.hub_url}>; rel="hub"')
        return ", ".join(links)

    def _load(self, path: str) -> _Representation | None:
        stat = self.storage.stat(path)
        if stat is None:
            return None
        with self._lock:
            cached = self._cache.get(path)
        if cached and cached.stored == stat:
            return cached
        body = self.storage.read(path)
        if body is None:
            return None
        digest = hashlib.sha256(body).hexdigest()[:32]
        gzipped = gzip.compress(body, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        found = _Representation(
            stat,
            stat.modified.replace(microsecond=0),
            body,
            f'"{digest}"',
            gzipped,
            f'"{digest}-gzip"',
        )
        with self._lock:
            self._cache[path] = found
            self._cache.move_to_end(path)
            while len(self._cache) > _CACHED_FILES:
                self._cache.popitem(last=False)
        return found


def _servable(path: str) -> bool:
    """No hidden files, no control characters (NUL above all), and names any file
    system takes: kabar writes none longer."""
    if len(path) > _MAX_PATH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    parts = path.split("/")
    return not any(part.startswith(".") or len(part.encode()) > _MAX_NAME for part in parts)


def _accepts_gzip(request: Request) -> bool:
    qualities: dict[str, float] = {}
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        quality = params.strip().lower().removeprefix("q=") if params else "1"
        qualities[coding.strip().lower()] = _quality(quality)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


def _quality(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def _not_modified(request: Request, found: _Representation, etags: tuple[str, ...]) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        offered = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in offered or bool(offered & set(etags))
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and found.modified <= since
    return False
