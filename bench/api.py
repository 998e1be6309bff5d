"""The HTTP API end to end: articles POSTed by a CMS until they are in the feeds.

Starts `kabar serve` (uvicorn on 127.0.0.1, a SQLite store in a temporary folder) in a
subprocess, makes an articles:write token, and POSTs 10,000 articles in batches of 100
to /api/v1/sources/cms/articles, then waits until the last one is in the served feed. Each
post stores its articles, adds them to the related-news index and marks the feeds for a
debounced rebuild; the server's log says how many rebuilds ran (goal: a few, not one per
request). Goal: at least 1,000 articles/s from the first POST to the last article in the
feed.

Usage: .venv/bin/python bench/api.py [--articles N] [--batch N] [--clients N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

START = datetime(2026, 12, 5, tzinfo=timezone(timedelta(hours=7)))
SECTIONS = ["Nasional", "Dunia", "Ekonomi", "Olahraga", "Teknologi", "Hiburan"]
WORDS = [
    "pemerintah", "presiden", "menteri", "rakyat", "harga", "pasar", "ekonomi", "pemilu",
    "partai", "daerah", "kota", "sekolah", "rumah", "sakit", "banjir", "gempa",
    "pertandingan", "tim", "juara", "teknologi", "data", "aplikasi",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def record(rng: random.Random, n: int) -> dict[str, Any]:
    words = [rng.choice(WORDS) for _ in range(180)]
    paragraphs = [" ".join(words[i : i + 45]).capitalize() + "." for i in range(0, 180, 45)]
    published = START + timedelta(seconds=n)  # the last posted is the newest in the feed
    return {
        "url": f"https://bench.example.id/cms/{n}",
        "title": " ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + f" {n}",
        "body": "".join(f"<p>{p}</p>" for p in paragraphs),
        "published": published.isoformat(),
        "section": SECTIONS[n % len(SECTIONS)],
        "tags": [f"topik-{n % 50}"],
    }


def project(folder: Path) -> Path:
    config = {
        "version": 1,
        "site": {"title": "Bench", "url": "https://bench.example.id", "timezone": "Asia/Jakarta"},
        "storage": {"database": "sqlite:///kabar.db", "feeds": "public/"},
        "sources": [{"id": "cms", "kind": "json", "path": "cms/"}],
        "feeds": [
            {"id": "semua", "title": "Semua", "archive": False},
            {"id": "rubrik", "title": "Rubrik", "split_by": "section", "archive": False},
        ],
        "api": {"rate_limit": 100000, "rebuild_delay": "500ms", "max_articles": 1000},
        "web": {"secret_env": "KABAR_SECRET"},
    }
    (folder / "cms").mkdir()
    (folder / "public").mkdir()
    path = folder / "kabar.yaml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(config, handle)
    return path


def make_token(config: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kabar", "-c", str(config), "tokens", "create",
         "--scope", "articles:write"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def start_server(config: Path, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[Any]:
    with log.open("w") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "kabar", "-c", str(config), "serve", "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit(f"kabar serve did not start:\n{log.read_text()}")


def run(articles: int, batch: int, clients: int) -> None:
    rng = random.Random(5)
    records = [record(rng, n) for n in range(articles)]
    batches = [records[i : i + batch] for i in range(0, articles, batch)]
    with tempfile.TemporaryDirectory(prefix="kabar-bench-api-") as temp:
        folder = Path(temp)
        config = project(folder)
        env = {**os.environ, "KABAR_SECRET": "bench-secret"}
        token = make_token(config, env)
        port = free_port()
        log = folder / "serve.log"
        server = start_server(config, port, log, env)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                              timeout=120) as client:  # fmt: skip

                def post(chunk: list[dict[str, Any]]) -> int:
                    answer = client.post("/api/v1/sources/cms/articles", json=chunk)
                    answer.raise_for_status()
                    return len(answer.json()["stored"])

                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    stored = sum(pool.map(post, batches))
                posted = time.perf_counter() - started
                last_url = records[-1]["url"]
                deadline = time.monotonic() + 120
                while last_url not in client.get("/feeds/semua.json").text:
                    assert time.monotonic() < deadline, "the last article never reached the feed"
                    time.sleep(0.02)
                total = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        rebuilds = log.read_text(encoding="utf-8").count("after API posts:")
    assert stored == articles, f"stored {stored} of {articles}"
    print(f"posted {articles:,} articles in {len(batches)} requests of {batch} "
          f"({clients} clients): {posted:.2f} s, {articles / posted:,.0f} articles/s")  # fmt: skip
    print(f"feeds rebuilt {rebuilds} times (not once per request: {len(batches)})")
    print(f"api end to end: {articles:,} articles in {total:.2f} s, "
          f"{articles / total:,.0f} articles/s (goal >= 1,000)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000, help="Articles to post.")
    parser.add_argument("--batch", type=int, default=100, help="Articles per request.")
    parser.add_argument("--clients", type=int, default=2, help="Requests in flight at once.")
    parser.add_argument("--quick", action="store_true", help="1,000 articles: seconds.")
    options = parser.parse_args()
    run(1_000 if options.quick else options.articles, options.batch, options.clients)


if __name__ == "__main__":
    main()
