from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from kabar.config import Config
from kabar.ingest import ingest_source
from kabar.sources import ReadContext, ReadError, read_file
from kabar.store import Store

CONTEXT = ReadContext(
    source="wire",
    base_url="https://kabar.example.id",
    language="id",
    timezone=ZoneInfo("Asia/Jakarta"),
    as_of=datetime(2024, 5, 1, 5, 0, tzinfo=UTC),
)

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Wire</title><link>https://wire.example/</link><language>en</language>
<item>
  <title>Floods &amp; landslides hit &lt;Sumatra&gt;</title>
  <link>https://wire.example/a/1</link>
  <guid isPermaLink="false">wire-1</guid>
  <pubDate>Wed, 01 May 2024 08:00:00 +0800</pubDate>
  <description>&lt;p&gt;Short &lt;b&gt;summary&lt;/b&gt;&lt;/p&gt;</description>
  <dc:creator>Reporter One</dc:creator>
  <category domain="https://kabar.example.id/section">Nasional</category>
  <category>banjir</category>
  <media:content url="https://wire.example/img/1.jpg" medium="image"/>
  <media:description>Rescue boats</media:description>
</item>
<item><title>No date</title><link>https://wire.example/a/2</link></item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="id">
  <title>Atom</title><id>tag:atom.example,2024:feed</id><updated>2024-05-01T10:00:00+07:00</updated>
  <entry>
    <title>Harga beras naik</title><id>tag:atom.example,2024:1</id>
    <link rel="alternate" href="https://atom.example/1"/>
    <published>2024-05-01T09:00:00+07:00</published><updated>2024-05-01T10:00:00+07:00</updated>
    <author><name>Ani</name></author>
    <content type="html">&lt;p&gt;Isi &lt;script&gt;alert(1)&lt;/script&gt;berita.&lt;/p&gt;
    </content>
  </entry>
</feed>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_lines_with_every_documented_field(tmp_path: Path) -> None:
    record = {
        "url": "https://kabar.example.id/b/1", "guid": "cms-1", "title": "Judul  {{ 7*7 }}",
        "body": "<p>Paragraf <script>x()</script>satu.</p><p>Dua &amp; tiga.</p>",
        "published": "2024-05-01T08:00:00+07:00", "updated": "2024-05-01T09:00:00+07:00",
        "summary": "Ringkasan", "section": "Ekonomi", "tags": ["beras", "harga"],
        "language": "id", "authors": ["Ani", "Budi"], "image_url": "https://kabar.example.id/i.jpg",
        "image_alt": "Pasar", "credit": "ANI | ANTARA",
        "related": [{"title": "Lain", "url": "https://kabar.example.id/b/0"}],
    }  # fmt: skip
    path = write(
        tmp_path, "a.jsonl", json.dumps(record) + "\n" + json.dumps(record | {"guid": "cms-2"})
    )
    first, second = read_file(path, CONTEXT)
    assert first.guid == "cms-1" and second.guid == "cms-2"
    assert first.title == "Judul {{ 7*7 }}"
    assert first.body_html == "<p>Paragraf satu.</p><p>Dua &amp; tiga.</p>"
    assert first.body_text == "Paragraf satu.\n\nDua & tiga."
    assert first.published.isoformat() == "2024-05-01T08:00:00+07:00"
    assert first.updated.isoformat() == "2024-05-01T09:00:00+07:00"
    assert (first.section, first.tags, first.authors) == (
        "Ekonomi",
        ("beras", "harga"),
        ("Ani", "Budi"),
    )
    assert (first.image_url, first.image_alt, first.credit) == (
        "https://kabar.example.id/i.jpg",
        "Pasar",
        "ANI | ANTARA",
    )
    assert first.related[0].title == "Lain"


def test_a_bad_json_line_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    good = {"url": "https://k.id/1", "title": "T", "body": "B", "published": "2024-05-01T08:00:00Z"}
    path = write(tmp_path, "mixed.jsonl", "\n".join([
        json.dumps(good), "{broken", json.dumps({"title": "no url"}),
        json.dumps(good | {"url": "https://k.id/2", "published": "kemarin"}),
    ]))  # fmt: skip
    rejected: list[tuple[int | str, str]] = []
    context = replace(CONTEXT, reject=lambda where, reason: rejected.append((where, reason)))
    articles = read_file(path, context)
    assert [a.url for a in articles] == ["https://k.id/1"]
    assert rejected == [
        (2, "invalid JSON: Expecting property name enclosed in double quotes"),
        (3, "missing required field(s): url, body, published"),
        (
            4,
            "published: 'kemarin' is neither an ISO 8601 date-time nor a relative time such"
            " as '4 jam lalu'",
        ),
    ]


def test_a_json_array_and_a_naive_time_in_the_site_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", json.dumps([
        {"url": "https://k.id/1", "title": "T", "body": "B", "published": "2024-05-01T08:00:00"}
    ]))  # fmt: skip
    [article] = read_file(path, CONTEXT)
    assert article.published.utcoffset() == timedelta(hours=7)


def test_a_relative_time_is_read_against_the_files_as_of_time(tmp_path: Path) -> None:
    """As a page's "Berita terkait" list: scraped records often carry "4 jam lalu"."""
    record = {"url": "https://k.id/1", "title": "T", "body": "B", "published": "4 jam lalu"}
    path = write(tmp_path, "a.jsonl", "\n".join([
        json.dumps(record),
        json.dumps(record | {"url": "https://k.id/2", "published": "90 minutes ago"}),
        json.dumps(record | {"url": "https://k.id/3", "published": "3000 tahun lalu"}),
        json.dumps(record | {"url": "https://k.id/4", "published": "\u0664 jam lalu"}),
        json.dumps(record | {"url": "https://k.id/5", "published": True}),
        json.dumps(record | {"url": "https://k.id/6", "published": "0001-01-01T00:00:00+14:00"}),
        json.dumps(record | {"url": "https://k.id/7", "published": "9999-12-31T23:00:00-05:00"}),
    ]))  # fmt: skip
    rejected: list[tuple[int | str, str]] = []
    context = replace(CONTEXT, reject=lambda where, reason: rejected.append((where, reason)))
    first, second = read_file(path, context)
    assert CONTEXT.as_of - first.published == timedelta(hours=4)
    assert first.published.utcoffset() == timedelta(hours=7)  # shown in the site's zone
    assert CONTEXT.as_of - second.published == timedelta(minutes=90)
    assert rejected == [
        (3, "published: '3000 tahun lalu' is more than a century ago"),
        (
            4,
            "published: '\u0664 jam lalu' is neither an ISO 8601 date-time nor a relative "
            "time such as '4 jam lalu'",
        ),  # only ASCII digits are read as a number
        (5, "published: expected a string, got true or false"),
        (6, "published: '0001-01-01T00:00:00+14:00' is out of the range of dates"),
        (7, "published: '9999-12-31T23:00:00-05:00' is out of the range of dates"),
    ]  # the rest of the file is kept


def test_rss_keeps_offsets_sections_media_and_skips_undated_entries(tmp_path: Path) -> None:
    rejected: list[tuple[int | str, str]] = []
    context = replace(CONTEXT, reject=lambda where, reason: rejected.append((where, reason)))
    [article] = read_file(write(tmp_path, "wire.xml", RSS), context)
    assert article.title == "Floods & landslides hit <Sumatra>"
    assert article.guid == "wire-1" and article.url == "https://wire.example/a/1"
    assert article.published.isoformat() == "2024-05-01T08:00:00+08:00"
    assert article.summary == "Short summary"
    assert article.authors == ("Reporter One",)
    assert (article.section, article.tags) == ("Nasional", ("banjir",))
    assert (article.image_url, article.image_alt) == (
        "https://wire.example/img/1.jpg",
        "Rescue boats",
    )
    assert article.language == "en"
    assert rejected == [("entry 2", "'No date' has no publication date")]


def test_atom_content_is_sanitised(tmp_path: Path) -> None:
    [article] = read_file(write(tmp_path, "feed.atom", ATOM), CONTEXT)
    assert article.body_html == "<p>Isi berita.</p>"
    assert article.updated.isoformat() == "2024-05-01T10:00:00+07:00"
    assert article.authors == ("Ani",)


def test_json_feed(tmp_path: Path) -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1", "title": "J", "language": "en",
        "items": [{"id": "j1", "url": "https://j.example/1", "title": "Hello",
                   "content_html": "<p>Hi</p>", "date_published": "2024-05-01T08:00:00+09:00",
                   "authors": [{"name": "Ken"}], "tags": ["a", "b"]}],
    }  # fmt: skip
    [article] = read_file(write(tmp_path, "feed.json", json.dumps(feed)), CONTEXT)
    assert (article.guid, article.title, article.body_text) == ("j1", "Hello", "Hi")
    assert article.published.utcoffset() == timedelta(hours=9)
    assert (article.authors, article.tags, article.language) == (("Ken",), ("a", "b"), "en")


def test_xml_that_is_not_a_feed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="not"):
        read_file(write(tmp_path, "x.xml", "<?xml version='1.0'?><html><p>x</p></html>"), CONTEXT)


# --- conditional GET over real HTTP ------------------------------------------------------


class FeedServer(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        FeedServer.requests.append(dict(self.headers))
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.end_headers()
            return
        body = RSS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("ETag", '"v1"')
        self.send_header("Last-Modified", "Wed, 01 May 2024 01:00:00 GMT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    FeedServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FeedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rss.xml"
    server.shutdown()
    server.server_close()


def test_remote_feeds_use_conditional_get(config: Config, store: Store, feed_url: str) -> None:
    from kabar.config import FeedSource

    source = FeedSource(id="wire", kind="feed", url=feed_url)
    first = ingest_source(config, store, source)
    second = ingest_source(config, store, source)
    assert first.stored.inserted == 1 and not first.not_modified
    assert second.not_modified and second.articles == 0
    assert "If-None-Match" not in FeedServer.requests[0]
    assert FeedServer.requests[1]["If-None-Match"] == '"v1"'
    assert FeedServer.requests[1]["If-Modified-Since"] == "Wed, 01 May 2024 01:00:00 GMT"
    assert store.source_state("wire").etag == '"v1"'
