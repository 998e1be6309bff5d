"""Feed storage: a local folder (the default) or any fsspec URL (s3://bucket/prefix).

A file is written only when its bytes change, so a rebuild of unchanged feeds leaves
modification times, and any ETag a static host derives from them, alone. In a local
folder a write is a temporary file in the same folder renamed over the target, so a
reader sees the old file or the new one, never half of one. Object stores replace an
object atomically on their own.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

_MEDIA_TYPES = {
    ".rss.xml": "application/rss+xml",
    ".atom.xml": "application/atom+xml",
    ".json": "application/feed+json",
    ".html": "text/html",
    ".xml": "application/xml",
}


def content_type_for(path: str) -> str:
    """The Content-Type to serve a stored file with, charset included for text."""
    for suffix, media_type in _MEDIA_TYPES.items():
        if path.endswith(suffix):
            return f"{media_type}; charset=utf-8"
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


class StoragePathError(ValueError):
    """A path that would leave the storage root."""


def check_path(relative: str) -> str:
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoragePathError(f"not a path inside feed storage: {relative!r}")
    return "/".join(parts)


@dataclass(frozen=True)
class StoredFile:
    size: int
    modified: datetime


class FeedStorage:
    """Reads and writes files under one root, through fsspec."""

    def __init__(self, location: str, **options: Any) -> None:
        self.location = location
        self.fs, root = fsspec.core.url_to_fs(location, **options)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    @classmethod
    def from_config(cls, config: Any) -> FeedStorage:
        return cls(config.resolve_url(config.storage.feeds))

    def __repr__(self) -> str:
        return f"FeedStorage({self.location!r})"

    def _full(self, relative: str) -> str:
        return f"{self.root}/{check_path(relative)}"

    def read(self, relative: str) -> bytes | None:
        path = self._full(relative)
        if not self.is_local:
            self.fs.invalidate_cache(path)  # another process may have written it
        try:
            return bytes(self.fs.cat_file(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def stat(self, relative: str) -> StoredFile | None:
        path = self._full(relative)
        if not self.is_local:
            self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        return StoredFile(size=int(info["size"]), modified=_modified(info))

    def write(self, relative: str, data: bytes) -> bool:
        """Store `data` unless the stored bytes are already the same; True if written."""
        if self.read(relative) == data:
            return False
        path = self._full(relative)
        if self.is_local:
            atomic_write(Path(path), data)
        else:
            self.fs.pipe_file(path, data, **self._upload_options(relative))
        log.debug("wrote %s (%d bytes)", relative, len(data))
        return True

    def _upload_options(self, relative: str) -> dict[str, str]:
        # S3 serves objects with the headers given at upload; static hosting needs them.
        if "s3" not in self.fs.protocol:
            return {}
        immutable = "/archive/" in f"/{relative}"
        cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
        return {"ContentType": content_type_for(relative), "CacheControl": cache}


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dot name: never served, never listed as a feed, even if a crash leaves it behind.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # No fsync: a file torn by a power cut differs from what the next build
        # renders, so that build rewrites it.
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; web servers must read it
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _modified(info: dict[str, Any]) -> datetime:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime(1970, 1, 1, tzinfo=UTC)
