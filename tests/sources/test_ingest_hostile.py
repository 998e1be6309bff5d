"""Hostile input: one bad file never stops ingest, remote sources have limits, and only
http(s) links reach any output."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from kabar.config import Config, FeedSource
from kabar.ingest import ingest_path, ingest_source
from kabar.sources import MAX_FILE_BYTES
from kabar.store import Store

from ..support.project import SEED, SEED_AS_OF

GOOD = {
    "url": "https://kabar.example.id/j/1",
    "title": "Harga cabai turun",
    "body": "Harga cabai di pasar induk turun.",
    "published": "2024-05-01T07:00:00+07:00",
}
DEEP = "[" * 100_000 + "]" * 100_000


def json_feed(items: object) -> str:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "F", "items": items})


def test_deep_nesting_fails_its_file_and_the_rest_is_stored(
    config: Config, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(GOOD), encoding="utf-8")
    (folder / "deep.json").write_text(DEEP, encoding="utf-8")
    (folder / "deep-lines.jsonl").write_text(json.dumps(GOOD) + "\n" + DEEP, encoding="utf-8")
    (folder / "unbalanced.json").write_text("{" * 100_000, encoding="utf-8")
    feed = json_feed([]).replace('"items": []', f'"items": [{DEEP}]')
    (folder / "deep-feed.json").write_text(feed, encoding="utf-8")
    report = ingest_path(config, store, folder, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 1
    reasons = {
        Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in report.failures
    }
    assert reasons == dict.fromkeys(
        ["deep.json", "deep-lines.jsonl", "unbalanced.json", "deep-feed.json"],
        "JSON nested deeper than 64 levels",
    )


def test_a_quote_left_open_hides_no_deep_line(config: Config, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "sneaky.jsonl"
    file.write_text("\n".join([json.dumps(GOOD), '"', DEEP]), encoding="utf-8")
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 1
    assert report.failures == [
        f"{file}:2: invalid JSON: Unterminated string starting at",
        f"{file}:3: JSON nested deeper than 64 levels",
    ]


# --- one URL policy --------------------------------------------------------------------


def test_only_http_links_are_kept(config: Config, store: Store, tmp_path: Path) -> None:
    records = [
        GOOD | {"image_url": "javascript:alert(1)",
                "related": [{"title": "R", "url": "data:text/html,x"},
                            {"title": "S", "url": "https://kabar.example.id/s"}]},
        GOOD | {"url": "javascript:alert(1)", "title": "Bad own url"},
        GOOD | {"url": "/relative/path", "title": "Relative"},
    ]  # fmt: skip
    file = tmp_path / "a.jsonl"
    file.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    [article] = store.articles()
    assert article.image_url == ""
    assert [(r.title, r.url) for r in article.related] == [
        ("R", ""), ("S", "https://kabar.example.id/s"),
    ]  # fmt: skip
    assert report.failures == [
        f"{file}:2: url 'javascript:alert(1)' is not an absolute http(s) URL",
        f"{file}:3: url '/relative/path' is not an absolute http(s) URL",
    ]
    assert report.warned == 2


def test_rss_links_go_through_the_same_policy(config: Config, store: Store, tmp_path: Path) -> None:
    rss = """<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>W</title>
<item><title>Bad</title><link>javascript:alert(1)</link><guid>g1</guid>
<pubDate>Wed, 01 May 2024 08:00:00 +0800</pubDate></item>
<item><title>Good</title><link>https://w.example/2</link>
<media:content url="data:image/png;base64,AA" medium="image"/>
<pubDate>Wed, 01 May 2024 08:00:00 +0800</pubDate></item>
</channel></rss>"""
    file = tmp_path / "w.xml"
    file.write_text(rss, encoding="utf-8")
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    [article] = store.articles()
    assert (article.url, article.image_url) == ("https://w.example/2", "")
    assert report.failures == [
        f"{file}: entry 1: url 'javascript:alert(1)' is not an absolute http(s) URL"
    ]


def test_unbalanced_bidi_controls_leave_one_line_fields(
    config: Config, store: Store, tmp_path: Path
) -> None:
    record = GOOD | {
        "title": "Harga \u202ecabai\u202c naik \u202e",
        "authors": ["\u2067Ani"],
        "tags": ["pasar\u2069", "\u202e"],
    }
    file = tmp_path / "a.json"
    file.write_text(json.dumps(record), encoding="utf-8")
    ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    [article] = store.articles()
    assert article.title == "Harga \u202ecabai\u202c naik"
    assert (article.authors, article.tags) == (("Ani",), ("pasar",))


# --- remote limits ---------------------------------------------------------------------


class HostileServer(BaseHTTPRequestHandler):
    mode: ClassVar[str] = "slow"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/feed+json")
        self.end_headers()
        try:
            if HostileServer.mode == "slow":  # one byte at a time, forever
                for _ in range(10_000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            else:  # more than the limit, with no Content-Length to refuse it early
                chunk = b" " * 65536
                for _ in range(MAX_FILE_BYTES // len(chunk) + 64):
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileServer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.json"
    server.shutdown()
    server.server_close()


def test_a_trickling_server_is_cut_at_the_deadline(
    config: Config, store: Store, hostile_url: str
) -> None:
    HostileServer.mode = "slow"
    source = FeedSource(id="wire", kind="feed", url=hostile_url, fetch_deadline="1s")
    started = time.monotonic()
    report = ingest_source(config, store, source)
    assert time.monotonic() - started < 5
    assert report.failures == [f"{hostile_url}: cannot fetch: not complete within the 1 s deadline"]


def test_a_global_deadline_applies_to_every_remote_source(
    write_config: object, hostile_url: str, store: Store
) -> None:
    from kabar import config as config_module

    HostileServer.mode = "slow"
    config = config_module.load(write_config(ingest={"fetch_deadline": "1s"}))  # type: ignore[operator]
    started = time.monotonic()
    report = ingest_source(config, store, FeedSource(id="wire", kind="feed", url=hostile_url))
    assert time.monotonic() - started < 5 and report.failed == 1


def test_a_huge_remote_body_is_refused_while_streaming(
    config: Config, store: Store, hostile_url: str
) -> None:
    HostileServer.mode = "large"
    report = ingest_source(config, store, FeedSource(id="wire", kind="feed", url=hostile_url))
    assert report.failures == [
        f"{hostile_url}: body passed the 20 MiB limit while downloading; the rest was not read"
    ]


def test_a_deep_remote_json_feed_is_one_failure(config: Config, store: Store) -> None:
    body = json_feed([]).replace('"items": []', f'"items": [{DEEP}]').encode()

    class Deep(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.json"
        report = ingest_source(config, store, FeedSource(id="wire", kind="feed", url=url))
    finally:
        server.shutdown()
        server.server_close()
    assert report.failures == [f"{url}: JSON nested deeper than 64 levels"]


def test_the_seed_still_reads(config: Config, store: Store) -> None:
    report = ingest_path(config, store, SEED, "seeds", as_of=SEED_AS_OF)
    assert (report.stored.inserted, report.failed, report.warned) == (11, 0, 0)


# --- memory ----------------------------------------------------------------------------

READ_IN_SUBPROCESS = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from kabar.sources import ReadContext, read_file

def peak_rss():  # VmHWM, not ru_maxrss: that keeps the forking parent's peak across exec
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024

context = ReadContext("m", "https://kabar.example.id", "id", ZoneInfo("Asia/Jakarta"),
                      datetime.now(UTC))
read_file(Path(sys.argv[1]), context)
print(peak_rss())
"""


@pytest.mark.parametrize("shape", ["array", "lines"])
def test_a_file_of_empty_objects_is_read_in_bounded_memory(tmp_path: Path, shape: str) -> None:
    """Within 10x the file's size plus 200 MB (bench/ingest_memory.py measures 18 MiB)."""
    count = 4 * 2**20 // 3
    text = "[" + ",".join(["{}"] * count) + "]" if shape == "array" else "{}\n" * count
    path = tmp_path / ("a.json" if shape == "array" else "a.jsonl")
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", READ_IN_SUBPROCESS, str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak = int(result.stdout)
    assert peak < 10 * path.stat().st_size + 200 * 2**20, f"{peak / 2**20:.0f} MiB"
