"""`kabar serve` over real HTTP: uvicorn on a loopback port serving the seed's feeds."""

from __future__ import annotations

import email.utils
import gzip
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from kabar.config import Config
from kabar.publish.feeds import build_feeds
from kabar.publish.storage import FeedStorage
from kabar.store import Store
from kabar.web import create_app

from ..support.feeds_checks import feed_config, ingest_seed
from ..support.project import WriteConfig
from ..support.serving import free_port, uvicorn_thread


@pytest.fixture
def site(write_config: WriteConfig, store: Store) -> tuple[Config, Store]:
    config = feed_config(write_config)
    ingest_seed(config, store)
    build_feeds(config, store, FeedStorage.from_config(config), ping=False)
    return config, store


@pytest.fixture
def server(site: tuple[Config, Store]) -> Iterator[httpx.Client]:
    """uvicorn in a thread, the app as `kabar serve` builds it."""
    with (
        uvicorn_thread(create_app(site[0]), free_port()) as base,
        httpx.Client(base_url=base) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("semua.rss.xml", "application/rss+xml; charset=utf-8"),
        ("semua.atom.xml", "application/atom+xml; charset=utf-8"),
        ("semua.json", "application/feed+json; charset=utf-8"),
        ("rubrik/dunia.rss.xml", "application/rss+xml; charset=utf-8"),
    ],
)
def test_feeds_are_served_with_type_validators_and_links(
    server: httpx.Client, site: tuple[Config, Store], path: str, content_type: str
) -> None:
    response = server.get(f"/feeds/{path}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    stored = Path(site[0].resolve("public")) / path
    assert response.content == stored.read_bytes()
    assert response.headers["etag"].startswith('"') and not response.headers["etag"].startswith(
        "W/"
    )
    modified = email.utils.parsedate_to_datetime(response.headers["last-modified"])
    assert abs(modified.timestamp() - stored.stat().st_mtime) < 1
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["link"] == (
        f'<https://kabar.example.id/feeds/{path}>; rel="self", '
        '<https://hub.example.org/>; rel="hub"'
    )


def test_conditional_get_answers_304(server: httpx.Client) -> None:
    first = server.get("/feeds/semua.atom.xml", headers={"Accept-Encoding": "identity"})
    etag, modified = first.headers["etag"], first.headers["last-modified"]

    by_etag = server.get(
        "/feeds/semua.atom.xml", headers={"If-None-Match": etag, "Accept-Encoding": "identity"}
    )
    assert by_etag.status_code == 304 and by_etag.content == b""
    assert by_etag.headers["etag"] == etag and "link" in by_etag.headers
    assert (
        server.get("/feeds/semua.atom.xml", headers={"If-None-Match": f'"x", W/{etag}'}).status_code
        == 304
    )

    by_date = server.get("/feeds/semua.atom.xml", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    earlier = email.utils.parsedate_to_datetime(modified) - timedelta(seconds=1)
    stale = email.utils.format_datetime(earlier, usegmt=True)
    assert (
        server.get("/feeds/semua.atom.xml", headers={"If-Modified-Since": stale}).status_code == 200
    )
    # If-None-Match decides when both are sent (RFC 9110 §13.2.2).
    both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
    assert server.get("/feeds/semua.atom.xml", headers=both).status_code == 200


def test_a_changed_feed_gets_a_new_etag(server: httpx.Client, site: tuple[Config, Store]) -> None:
    config, store = site
    etag = server.get("/feeds/semua.json").headers["etag"]
    article = next(store.articles(limit=1))
    store.upsert(
        [article.with_changes(title="Judul baru", updated=article.updated + timedelta(hours=1))]
    )
    build_feeds(config, store, FeedStorage.from_config(config), ping=False)
    response = server.get("/feeds/semua.json", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["etag"] != etag
    assert "Judul baru" in response.text


def test_gzip_when_the_client_asks(server: httpx.Client, site: tuple[Config, Store]) -> None:
    stored = (Path(site[0].resolve("public")) / "semua.rss.xml").read_bytes()
    with server.stream("GET", "/feeds/semua.rss.xml", headers={"Accept-Encoding": "gzip"}) as raw:
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.headers["vary"] == "Accept-Encoding"
        body = b"".join(raw.iter_raw())
    assert gzip.decompress(body) == stored and len(body) < len(stored)
    gzip_etag = raw.headers["etag"]
    plain = server.get("/feeds/semua.rss.xml", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["etag"] != gzip_etag
    refused = server.get("/feeds/semua.rss.xml", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    cached = server.get(
        "/feeds/semua.rss.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": gzip_etag}
    )
    assert cached.status_code == 304


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link" and dict(attrs).get("rel") == "alternate":
            self.links.append(dict(attrs))


def test_index_page_has_an_autodiscovery_link_per_feed(server: httpx.Client) -> None:
    assert server.get("/").headers["location"] == "/feeds/"
    response = server.get("/feeds/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    parser = _AlternateLinks()
    parser.feed(response.text)
    found = {(link["type"], link["href"]) for link in parser.links}
    base = "https://kabar.example.id/feeds"
    assert found == {
        ("application/rss+xml", f"{base}/semua.rss.xml"),
        ("application/atom+xml", f"{base}/semua.atom.xml"),
        ("application/feed+json", f"{base}/semua.json"),
        ("application/rss+xml", f"{base}/rubrik/dunia.rss.xml"),
        ("application/atom+xml", f"{base}/rubrik/dunia.atom.xml"),
    }
    assert all(link["title"] for link in parser.links)


def test_archive_pages_are_cacheable_forever(server: httpx.Client) -> None:
    response = server.get("/feeds/semua/archive/1.atom.xml")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["link"] == (
        '<https://kabar.example.id/feeds/semua/archive/1.atom.xml>; rel="self"'
    )


@pytest.mark.parametrize(
    "path", ["/feeds/nope.xml", "/feeds/.kabar/feeds.json", "/feeds/%2e%2e/kabar.yaml"]
)
def test_missing_and_hidden_files_are_not_found(server: httpx.Client, path: str) -> None:
    assert server.get(path).status_code == 404


def test_head_has_headers_and_no_body(server: httpx.Client) -> None:
    response = server.head("/feeds/semua.json")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == "application/feed+json; charset=utf-8"


def test_the_serve_command_serves_the_configured_feeds(site: tuple[Config, Store]) -> None:
    config = site[0]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kabar", "-c", str(config.path), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/feeds/semua.atom.xml")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "kabar serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
