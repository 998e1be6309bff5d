"""Feed build speed on a large store.

Fills a SQLite store with 100,000 articles over 365 days in 12 sections, then times:

- a full build of all feeds (the main feed plus one per section, 50 items each) into
  empty storage, with archives off, from the store query to the written files, against
  raw feedgen writing RSS and Atom files for the same entries (already read from the
  store) in the same run (the kabar/raw ratio; goal <= 2): once with the same two
  formats, once with JSON Feed as well;
- the first build with RFC 5005 archives on, which cuts every archive page (one-off);
- an incremental build after 1 article is added (goal <= 0.5 s), checking that only
  the affected feeds (the main feed and that article's section) were rewritten.

Usage: .venv/bin/python bench/feeds.py [--articles N] [--repeat N] [--database FILE]
(--database keeps the filled store in FILE for later runs; the incremental step adds a
few articles to it.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator

from kabar.config import Config
from kabar.model import Article, article_id
from kabar.publish.feeds import build_feeds, feed_targets, newest_articles
from kabar.publish.storage import FeedStorage
from kabar.store import Store

SECTIONS = [
    "Nasional", "Dunia", "Ekonomi", "Bisnis", "Olahraga", "Teknologi", "Sains", "Hiburan",
    "Gaya Hidup", "Otomotif", "Kesehatan", "Pendidikan",
]  # fmt: skip
TAGS = [f"topik-{n}" for n in range(200)]
ALL_FORMATS = ("rss", "atom", "json")
SUFFIXES = (".rss.xml", ".atom.xml", ".json")
WIB = timezone(timedelta(hours=7))
END = datetime(2026, 11, 1, 12, 0, tzinfo=WIB)
WORDS = [
    "pemerintah", "presiden", "menteri", "rakyat", "harga", "pasar", "ekonomi", "pemilu",
    "partai", "daerah", "kota", "sekolah", "rumah", "sakit", "banjir", "gempa",
    "pertandingan", "tim", "juara", "teknologi", "data", "aplikasi",
]  # fmt: skip


def make_article(rng: random.Random, n: int, published: datetime, section: str) -> Article:
    words = [rng.choice(WORDS) for _ in range(220)]
    paragraphs = [" ".join(words[i : i + 44]).capitalize() + "." for i in range(0, 220, 44)]
    guid = f"https://bench.example.id/read/{n}"
    return Article(
        id=article_id("bench", guid),
        guid=guid,
        source="bench",
        url=f"{guid}/judul-{n}",
        title=" ".join(rng.choice(WORDS) for _ in range(9)).capitalize(),
        published=published,
        updated=published,
        summary=paragraphs[0][:200],
        body_text="\n\n".join(paragraphs),
        body_html="".join(f"<p>{p}</p>" for p in paragraphs),
        authors=(f"Penulis {n % 97}",),
        section=section,
        tags=tuple(rng.sample(TAGS, 2)),
        image_url=f"https://bench.example.id/img/{n}.jpg",
        image_alt=f"Foto {n}",
        language="id",
    )


def fill(store: Store, count: int) -> None:
    rng = random.Random(20261127)
    span = timedelta(days=365).total_seconds()
    batch = []
    for n in range(count):
        published = END - timedelta(seconds=int(span * n / count))
        batch.append(make_article(rng, n, published, SECTIONS[n % len(SECTIONS)]))
        if len(batch) == 5000:
            store.upsert(batch, now=datetime.now(UTC))
            batch.clear()
    if batch:
        store.upsert(batch, now=datetime.now(UTC))


def config_for(folder: Path, *, archive: bool, formats: Sequence[str] = ALL_FORMATS) -> Config:
    feeds = [
        {"id": "semua", "title": "Semua berita", "archive": archive, "formats": formats},
        {"id": "rubrik", "title": "Rubrik", "split_by": "section", "archive": archive,
         "formats": formats},
    ]  # fmt: skip
    return Config.model_validate(
        {
            "version": 1,
            "site": {"title": "Bench", "url": "https://bench.example.id", "language": "id"},
            "storage": {"database": "sqlite://", "feeds": str(folder)},
            "feeds": feeds,
        }
    )


def raw_feedgen(entries: list[list[Article]], folder: Path) -> None:
    """What feedgen alone does with the same entries: one generator per feed, RSS and Atom
    written to files with its own rss_file/atom_file."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, chosen in enumerate(entries):
        fg = FeedGenerator()
        fg.id("https://bench.example.id/feeds/x")
        fg.title("Bench")
        fg.link(href="https://bench.example.id", rel="alternate")
        fg.description("Bench")
        fg.language("id")
        fg.load_extension("media")
        for article in chosen:
            fe = fg.add_entry(order="append")
            fe.id(article.guid)
            fe.title(article.title)
            fe.link(href=article.url)
            fe.published(article.published)
            fe.updated(article.updated)
            fe.author(name=article.authors[0])
            fe.category([{"term": t} for t in (article.section, *article.tags)])
            fe.content(article.body_html, type="html")
            fe.summary(article.summary)
            fe.media.content(url=article.image_url, medium="image", group=None)
        fg.updated(chosen[0].updated)
        fg.rss_file(str(folder / f"{n}.rss.xml"), pretty=True)
        fg.atom_file(str(folder / f"{n}.atom.xml"), pretty=True)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", type=Path, help="SQLite file to fill once and reuse")
    parser.add_argument("--quick", action="store_true", help="2,000 articles, 2 runs: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.articles, args.repeat = 2_000, 2

    with tempfile.TemporaryDirectory(prefix="kabar-bench-") as tmp:
        folder = Path(tmp)
        store = Store.open(f"sqlite:///{args.database or folder / 'bench.db'}")
        start = time.perf_counter()
        if store.count() < args.articles:
            fill(store, args.articles)
        print(f"store: {store.count():,} articles, ready in {time.perf_counter() - start:.1f} s")

        # Full builds vs raw feedgen, archives off, into fresh storage each run. Kabar
        # and raw alternate, so that load from other processes falls on both alike.
        targets = [
            t for f in config_for(folder, archive=False).feeds for t in feed_targets(store, f)
        ]
        entries = [newest_articles(store, t) for t in targets]
        for formats in (("rss", "atom"), ALL_FORMATS):
            kabar_times, raw_times = [], []
            for run in range(args.repeat):
                fresh = config_for(
                    folder / f"full-{len(formats)}-{run}", archive=False, formats=formats
                )
                kabar_time, report = timed(
                    lambda c=fresh: build_feeds(c, store, FeedStorage.from_config(c), ping=False)
                )
                kabar_times.append(kabar_time)
                raw_times.append(timed(lambda: raw_feedgen(entries, folder / "raw"))[0])
            full, raw = statistics.median(kabar_times), statistics.median(raw_times)
            print(
                f"full build, {report.documents} feeds x {'+'.join(formats)} "
                f"({len(report.written)} files, query to write): {full * 1000:.0f} ms; "
                f"raw feedgen RSS+Atom files for the same entries: {raw * 1000:.0f} ms; "
                f"kabar/raw = {full / raw:.2f} (goal <= 2)"
            )

        # First build with archives: every full page of history is cut once.
        config = config_for(folder / "archived", archive=True)
        storage = FeedStorage.from_config(config)
        first, report = timed(lambda: build_feeds(config, store, storage, ping=False))
        print(
            f"first build with archives: {report.archive_pages:,} archive pages, "
            f"{len(report.written):,} files: {first:.1f} s (one-off)"
        )

        # Incremental: one new article in one section.
        rng = random.Random(7)
        times = []
        for n in range(args.repeat):
            newest = datetime.now(WIB).replace(microsecond=0) + timedelta(minutes=n)
            article = make_article(rng, store.count(), newest, "Ekonomi")
            store.upsert([article], now=datetime.now(UTC))
            start = time.perf_counter()
            report = build_feeds(config, store, storage, ping=False)
            times.append(time.perf_counter() - start)
            expected = {f"{k}{s}" for k in ("semua", "rubrik/ekonomi") for s in SUFFIXES}
            if set(report.written) - {f for f in report.written if "/archive/" in f} != expected:
                print(f"incremental build rewrote {sorted(report.written)}", file=sys.stderr)
                sys.exit(1)
        print(
            f"incremental build after 1 new article: {statistics.median(times) * 1000:.0f} ms "
            f"(goal <= 500 ms); rewrote only the main feed and rubrik/ekonomi "
            f"({report.unchanged} files unchanged)"
        )
        store.close()


if __name__ == "__main__":
    main()
