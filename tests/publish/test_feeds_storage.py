"""Feed storage through fsspec, against a local folder and against S3 (moto's server mode
on loopback, through s3fs): files are written only when their bytes change."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kabar.config import Config
from kabar.publish.feeds import build_feeds
from kabar.publish.storage import FeedStorage, StoragePathError
from kabar.store import Store

from ..support.feeds_checks import feed_config, ingest_seed, tree
from ..support.project import WriteConfig
from ..support.serving import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kabar-test", "AWS_SECRET_ACCESS_KEY": "kabar-test"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A versioned bucket: every PUT makes a version, so rewrites can be counted."""
    for name, value in {**CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.bucket = f"feeds-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    client.put_bucket_versioning(
        Bucket=client.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return client


def versions(s3: Any, key: str) -> int:
    listed = s3.list_object_versions(Bucket=s3.bucket, Prefix=key)
    return sum(1 for v in listed.get("Versions", []) if v["Key"] == key)


def test_local_folder_writes_only_changed_bytes(tmp_path: Path) -> None:
    storage = FeedStorage(str(tmp_path / "public"))
    target = tmp_path / "public" / "rubrik" / "dunia.rss.xml"
    assert storage.write("rubrik/dunia.rss.xml", b"<rss>1</rss>") is True
    assert storage.read("rubrik/dunia.rss.xml") == b"<rss>1</rss>"
    before = target.stat()
    assert storage.write("rubrik/dunia.rss.xml", b"<rss>1</rss>") is False
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert storage.write("rubrik/dunia.rss.xml", b"<rss>2</rss>") is True
    assert target.read_bytes() == b"<rss>2</rss>"
    assert target.stat().st_mode & 0o777 == 0o644
    assert storage.stat("rubrik/dunia.rss.xml").size == len(b"<rss>2</rss>")
    assert storage.read("nope.xml") is None and storage.stat("nope.xml") is None


def test_local_writes_are_a_rename_over_the_old_file(tmp_path: Path) -> None:
    storage = FeedStorage(str(tmp_path))
    storage.write("semua.rss.xml", b"old")
    with (tmp_path / "semua.rss.xml").open("rb") as reader:
        storage.write("semua.rss.xml", b"new")
        assert reader.read() == b"old"  # a reader holding the old file still sees all of it
    assert (tmp_path / "semua.rss.xml").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["semua.rss.xml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FeedStorage(str(tmp_path))
    storage.write("semua.rss.xml", b"old")

    def failing_replace(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        storage.write("semua.rss.xml", b"new")
    assert (tmp_path / "semua.rss.xml").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["semua.rss.xml"]


@pytest.mark.parametrize("path", ["../escape.xml", "/etc/passwd", "a/../../b", ""])
def test_paths_stay_inside_the_storage_root(tmp_path: Path, path: str) -> None:
    with pytest.raises(StoragePathError):
        FeedStorage(str(tmp_path)).write(path, b"x")


def test_s3_writes_only_changed_bytes_with_feed_headers(s3: Any, s3_endpoint: str) -> None:
    storage = FeedStorage(f"s3://{s3.bucket}/kabar", endpoint_url=s3_endpoint)
    assert storage.write("semua.rss.xml", b"<rss>1</rss>") is True
    assert storage.write("semua.rss.xml", b"<rss>1</rss>") is False
    assert versions(s3, "kabar/semua.rss.xml") == 1
    assert storage.write("semua.rss.xml", b"<rss>2</rss>") is True
    assert versions(s3, "kabar/semua.rss.xml") == 2
    assert storage.read("semua.rss.xml") == b"<rss>2</rss>"
    head = s3.head_object(Bucket=s3.bucket, Key="kabar/semua.rss.xml")
    assert head["ContentType"] == "application/rss+xml; charset=utf-8"
    assert head["CacheControl"] == "public, max-age=300"
    storage.write("semua/archive/1.atom.xml", b"<feed/>")
    head = s3.head_object(Bucket=s3.bucket, Key="kabar/semua/archive/1.atom.xml")
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert storage.stat("semua.rss.xml").size == len(b"<rss>2</rss>")
    assert storage.read("nope.xml") is None and storage.stat("nope.xml") is None


def test_feeds_built_to_s3_match_the_local_build(
    s3: Any, write_config: WriteConfig, store: Store, tmp_path: Path
) -> None:
    """The configured storage URL is used as is; the endpoint comes from the standard
    AWS_ENDPOINT_URL variable, as it would for any S3-compatible service."""
    s3_config = feed_config(write_config, storage={"feeds": f"s3://{s3.bucket}/feeds"})
    ingest_seed(s3_config, store)
    s3_storage = FeedStorage.from_config(s3_config)
    first = build_feeds(s3_config, store, s3_storage, ping=False)
    local_config: Config = s3_config.model_copy(
        update={"storage": s3_config.storage.model_copy(update={"feeds": str(tmp_path / "out")})}
    )
    build_feeds(local_config, store, FeedStorage.from_config(local_config), ping=False)
    local = tree(tmp_path / "out")
    assert sorted(first.written) == sorted(k for k in local if not k.startswith(".kabar/"))
    for name, data in local.items():
        assert s3_storage.read(name) == data, name

    again = build_feeds(s3_config, store, s3_storage, force=True, ping=False)
    assert again.written == []
    assert all(versions(s3, f"feeds/{name}") == 1 for name in local)
