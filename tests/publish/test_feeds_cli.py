"""`kabar build feeds`, `kabar publish` and the WebSub ping, from the command line,
against a real hub endpoint on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from kabar.cli import cli

from ..support.feeds_checks import FEED_SETTINGS
from ..support.project import SEED_AS_OF, WriteConfig


class Hub:
    """A WebSub hub stand-in that records publish pings and answers `status`."""

    def __init__(self) -> None:
        self.pings: list[dict[str, list[str]]] = []
        self.status = 204
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hub.pings.append(parse_qs(self.rfile.read(length).decode()))
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"


@pytest.fixture
def hub() -> Iterator[Hub]:
    running = Hub()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def run(config_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["-c", str(config_path), *args], catch_exceptions=False)


@pytest.fixture
def config_path(write_config: WriteConfig, hub: Hub) -> Path:
    web = {**FEED_SETTINGS["web"], "websub_hub": hub.url}
    path = write_config(**{**FEED_SETTINGS, "web": web})
    assert run(path, "ingest", "--as-of", SEED_AS_OF.isoformat()).exit_code == 0
    return path


def test_build_feeds_writes_files_and_pings_the_hub(config_path: Path, hub: Hub) -> None:
    result = run(config_path, "build", "feeds", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    public = config_path.parent / "public"
    assert "semua.atom.xml" in report["written"] and (public / "semua.atom.xml").exists()
    topics = sorted(url for ping in hub.pings for url in ping["hub.url"])
    assert all(ping["hub.mode"] == ["publish"] for ping in hub.pings)
    base = "https://kabar.example.id/feeds"
    assert topics == sorted(
        f"{base}/{name}"
        for name in (
            "semua.rss.xml", "semua.atom.xml", "semua.json",
            "rubrik/dunia.rss.xml", "rubrik/dunia.atom.xml",
        )
    )  # fmt: skip
    assert sorted(report["pinged"]) == topics

    hub.pings.clear()
    again = run(config_path, "build", "feeds")
    assert again.exit_code == 0
    assert "wrote 0 files" in again.output and hub.pings == []


def test_one_feed_by_id(config_path: Path, hub: Hub) -> None:
    result = run(config_path, "build", "feeds", "rubrik", "--no-ping")
    assert result.exit_code == 0, result.output
    public = config_path.parent / "public"
    assert (public / "rubrik" / "dunia.rss.xml").exists()
    assert not (public / "semua.rss.xml").exists()
    assert hub.pings == []


def test_a_failing_hub_is_reported_and_the_feeds_still_written(config_path: Path, hub: Hub) -> None:
    hub.status = 503
    result = run(config_path, "build", "feeds")
    assert result.exit_code == 0
    assert "answered 503" in result.output
    assert (config_path.parent / "public" / "semua.rss.xml").exists()


def test_unknown_feed_id_is_a_usage_error(config_path: Path) -> None:
    result = run(config_path, "build", "feeds", "semau")
    assert result.exit_code == 2
    assert "FEED_ID: unknown feed id(s): semau (configured: semua, rubrik)" in result.output


def test_dry_run_writes_nothing(config_path: Path, hub: Hub) -> None:
    result = run(config_path, "build", "feeds", "--dry-run")
    assert result.exit_code == 0 and "would write" in result.output
    assert not (config_path.parent / "public").exists() and hub.pings == []


def test_publish_ingests_then_builds_feeds(write_config: WriteConfig) -> None:
    path = write_config(**{**FEED_SETTINGS, "web": {"base_url": "https://kabar.example.id"}})
    result = run(path, "publish", "--as-of", SEED_AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert "11 new" in result.output and "feeds: 2 feeds" in result.output
    public = path.parent / "public"
    assert {"semua.rss.xml", "semua.atom.xml", "semua.json", "index.html"} <= {
        p.name for p in public.iterdir()
    }


def test_every_command_has_help() -> None:
    for args in (["build", "--help"], ["build", "feeds", "--help"], ["serve", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_unwritable_storage_is_reported(write_config: WriteConfig) -> None:
    path = write_config(**{**FEED_SETTINGS, "storage": {"feeds": "kabar.yaml/public"}})
    assert run(path, "ingest", "--as-of", SEED_AS_OF.isoformat()).exit_code == 0
    result = run(path, "build", "feeds")
    assert result.exit_code == 1
    assert "feed storage kabar.yaml/public:" in result.output and "Traceback" not in result.output


def test_bad_feed_settings_are_located_by_check(write_config: WriteConfig) -> None:
    path = write_config(
        **{
            **FEED_SETTINGS,
            "feeds": [{"id": "semua", "title": "Semua", "path": "../luar", "archive": "kadang"}],
            "storage": {"feeds": "public/", "feeds_url": "cdn.example.id/feeds"},
        }
    )
    result = run(path, "check")
    assert result.exit_code == 2
    assert "storage.feeds_url: expected an absolute http(s) URL" in result.output
    assert "feeds.0.path: '../luar' is not a feed path" in result.output
    assert "feeds.0.archive: Input should be a valid boolean" in result.output
