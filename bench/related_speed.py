"""Related-news speed on 100,000 generated articles over 365 days (seeded).

Prints, in memory: the index build time, the add per article (one at a time, merges
included), p50/p95 of the related block of each item of 12-item digests, and memory (the
engine's own share: resident memory after the build less before it; peak RSS). Then,
against a SQLite store holding the same articles: the add per article with its terms
stored, and three ways to start, in the same run: reading the stored terms, reading the
index snapshot beside the database, and rebuilding by analysing every article again.

Each article is generated from its own seed when needed, so the bench holds none.

With `--archive-years N` it measures an archive instead: the articles over N years are
stored in SQLite with their terms, and the engine holds only the window before the newest
(memory follows the window, not the archive). It prints the start-up (from the stored
terms, then from the snapshot), p50/p95 of the blocks of digests of the last two weeks,
a query a year back (which loads that window) and the blocks around it, adds one at a
time of newer articles (evicting what leaves the window), and the peak RSS of the whole
run, goal 1 GB: `--archive-years 5 --articles 1000000`.

Usage: python bench/related_speed.py [--articles 100000] [--days 365] [--no-store] [--quick]
       python bench/related_speed.py --archive-years 5 --articles 1000000 [--quick]
`--quick` runs 3,000 articles over 30 days in a few seconds (a smoke run, not the figures);
with `--archive-years`, 5,000 articles.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from kabar.config import Config, Related, Site
from kabar.model import Article, article_id
from kabar.related import RelatedEngine, snapshot
from kabar.related.index import COMPACT_EVERY
from kabar.store import Store
from kabar.store.tables import related_features

SEED = 20240501
START = datetime(2024, 1, 1, tzinfo=UTC)
WIB = timezone(timedelta(hours=7))
ADDS = COMPACT_EVERY  # one at a time: exactly one full merge falls inside
MERGE_NOTE = ", one full merge included"


def vocabulary() -> list[str]:
    import Sastrawi

    path = Path(Sastrawi.__file__).parent / "Stemmer" / "data" / "kata-dasar.txt"
    words = [w.strip() for w in path.read_text(encoding="utf-8").split("\n")]
    return sorted(w for w in words if w.isalpha() and 4 <= len(w) <= 10)


class Corpus:
    """News-like articles: 200 topics with their own words, ~230-word bodies, tags."""

    def __init__(self, count: int, days: int, *, seed: int = SEED, prefix: str = "a") -> None:
        rng = np.random.default_rng(seed)
        words = np.array(vocabulary())
        rng.shuffle(words)
        self.common, self.topical = words[:600], words[600:10600].reshape(200, 50)
        self.seconds = np.sort(rng.integers(0, days * 86400, count))
        self.seed, self.prefix = seed, prefix

    def __len__(self) -> int:
        return len(self.seconds)

    def __iter__(self) -> Iterator[Article]:
        return (self.article(i) for i in range(len(self)))

    def published(self, i: int) -> datetime:
        return (START + timedelta(seconds=int(self.seconds[i]))).astimezone(WIB)

    def article(self, i: int) -> Article:
        rng = np.random.default_rng((self.seed, i))
        topic = self.topical[rng.integers(len(self.topical))]
        story = rng.choice(topic, 6, replace=False)
        kind = rng.random(230)
        body = np.where(
            kind < 0.25,
            rng.choice(story, 230),
            np.where(kind < 0.6, rng.choice(topic, 230), rng.choice(self.common, 230)),
        ).tolist()
        sentences = [" ".join(body[j : j + 12]).capitalize() + "." for j in range(0, 230, 12)]
        title = " ".join([*story[:3], *rng.choice(topic, 3)]).capitalize()
        guid = f"{self.prefix}{i}"
        return Article(
            id=article_id("bench", guid),
            guid=guid,
            source="bench",
            url=f"https://kabar.example.id/read/{guid}",
            title=title,
            summary=sentences[0],
            body_text="\n\n".join(sentences),
            section=f"rubrik-{int(rng.integers(12))}",
            tags=tuple(story[:2].tolist()),
            published=self.published(i),
            updated=self.published(i),
        )


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(articles: Iterable[Article], spent: list[float]) -> Iterator[Article]:
    """The articles, adding the time taken to make each to `spent[0]`."""
    items = iter(articles)
    while True:
        started = time.perf_counter()
        article = next(items, None)
        spent[0] += time.perf_counter() - started
        if article is None:
            return
        yield article


def block_times(
    engine: RelatedEngine, corpus: Corpus, digests: int, *, days: int = 90, end: int | None = None
) -> list[float]:
    """Time each related block of `digests` 12-item digests spread over `days` before
    `end` (seconds after START; default: the newest article)."""
    rng = np.random.default_rng(SEED)
    settings = Related()
    end = int(corpus.seconds[-1]) if end is None else end
    times = []
    for _ in range(digests):
        issue = end - int(rng.uniform(0, days * 86400))
        first, last = np.searchsorted(corpus.seconds, [issue - 86400, issue])
        issue_time = (START + timedelta(seconds=issue)).astimezone(WIB)
        for i in range(max(int(first), int(last) - 12), int(last)):
            article = corpus.article(i)
            started = time.perf_counter()
            engine.related(article, before=issue_time, settings=settings)
            times.append(time.perf_counter() - started)
    return times


def add_stored_one_at_a_time(
    store: Store, engine: RelatedEngine, articles: Iterable[Article]
) -> tuple[float, float]:
    """Seconds spent storing, and adding to the engine, each article on its own."""
    upserts = adds = 0.0
    for article in articles:
        started = time.perf_counter()
        store.upsert([article])
        upserts += time.perf_counter() - started
        started = time.perf_counter()
        engine.add([article])
        adds += time.perf_counter() - started
    return upserts, adds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--digests", type=int, default=50)
    parser.add_argument("--no-store", action="store_true", help="skip the SQLite part")
    parser.add_argument(
        "--archive-years",
        type=int,
        metavar="N",
        help="measure an archive of N years in SQLite, the engine holding only the window",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3,000 articles over 30 days: a smoke run"
    )
    args = parser.parse_args()
    adds = ADDS
    if args.archive_years:
        quick = args.quick
        archive(
            5_000 if quick else args.articles,
            args.archive_years,
            5 if quick else args.digests,
            300 if quick else ADDS,
        )
        return
    if args.quick:
        args.articles, args.days, args.digests, adds = 3000, 30, 5, 300

    corpus = Corpus(args.articles, args.days)
    extra = [a for a in Corpus(adds, args.days, seed=SEED + 1, prefix="x")]
    before = rss_mb()
    generating = [0.0]
    started = time.perf_counter()
    engine = RelatedEngine.build(timed(corpus, generating), site_language="id")
    build = time.perf_counter() - started - generating[0]
    print(f"{len(corpus):,} generated articles over {args.days} days")
    print(
        f"build (analyse + index, in memory)  {build:7.2f} s    goal <= 60 s "
        f"(generating the articles: {generating[0]:.1f} s more)"
    )
    print(
        f"memory: engine {rss_mb() - before:,.0f} MB (resident after build less before), "
        f"index arrays {engine.index.nbytes() / 2**20:,.0f} MB, peak RSS {peak_rss_mb():,.0f} MB"
    )

    started = time.perf_counter()
    for article in extra:
        engine.add([article])
    add = (time.perf_counter() - started) / len(extra) * 1000
    print(
        f"add, one at a time, in memory       {add:7.2f} ms   goal <= 5 ms "
        f"({len(extra):,} adds{MERGE_NOTE if len(extra) >= COMPACT_EVERY else ''})"
    )

    started = time.perf_counter()
    engine.related(corpus.article(len(corpus) - 1))  # warm the caches once
    print(
        f"first block (fits the topics)       {time.perf_counter() - started:7.2f} s    "
        f"peak RSS {peak_rss_mb():,.0f} MB"
    )
    times = block_times(engine, corpus, args.digests)
    p50, p95 = (np.percentile(times, [50, 95]) * 1000).tolist()
    print(
        f"related block, {len(times)} blocks of {args.digests} 12-item digests: "
        f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, mean "
        f"{statistics.mean(times) * 1000:.2f} ms   goal p95 <= 10 ms"
    )
    print(f"peak RSS (in-memory part)           {peak_rss_mb():7.0f} MB   goal <= 1,536 MB")
    del engine
    if not args.no_store:
        store_part(corpus, extra)
        print(f"peak RSS (whole run)                {peak_rss_mb():7.0f} MB   goal <= 1,536 MB")


def archive(count: int, years: int, digests: int, adds: int) -> None:
    """The archive case: see the module's docstring."""
    config = Config(version=1, site=Site(title="bench", url="https://kabar.example.id"))
    days = years * 365
    corpus = Corpus(count, days)
    print(f"archive: {count:,} generated articles over {years} years, in SQLite")
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(f"sqlite:///{folder}/bench.db") as store,
    ):
        started = time.perf_counter()
        writer = RelatedEngine.open(config, store)  # not loaded: stores terms, as ingest does
        batch: list[Article] = []
        for article in corpus:
            batch.append(article)
            if len(batch) == 1000:
                store.upsert(batch)
                writer.add(batch)
                batch.clear()
        store.upsert(batch)
        writer.add(batch)
        del writer, batch
        print(
            f"stored, with terms                  {time.perf_counter() - started:7.0f} s  "
            f"(generating, upserting and analysing; peak RSS {peak_rss_mb():,.0f} MB)"
        )

        before = rss_mb()
        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()
        first = time.perf_counter() - started
        held = len(engine.index)
        print(
            f"start-up, stored terms read         {first:7.2f} s  ({held:,} articles held: "
            f"{engine.span.since:%Y-%m-%d} on; the snapshot written too; "
            f"engine {rss_mb() - before:,.0f} MB)"
        )
        del engine
        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()
        print(f"start-up, from the snapshot         {time.perf_counter() - started:7.2f} s")
        started = time.perf_counter()
        engine.related(corpus.article(len(corpus) - 1))
        print(f"first block (fits the topics)       {time.perf_counter() - started:7.2f} s")
        times = block_times(engine, corpus, digests, days=14)
        p50, p95 = (np.percentile(times, [50, 95]) * 1000).tolist()
        print(
            f"related block, {len(times)} blocks of {digests} 12-item digests of the last "
            f"2 weeks: p50 {p50:.2f} ms, p95 {p95:.2f} ms   goal p95 <= 10 ms"
        )

        year_back = int(corpus.seconds[-1]) - 365 * 86400
        index = int(np.searchsorted(corpus.seconds, year_back))
        started = time.perf_counter()
        engine.related(corpus.article(index))
        print(
            f"a block a year back (loads that window) {time.perf_counter() - started:5.2f} s  "
            f"({len(engine.index):,} articles held)"
        )
        times = block_times(engine, corpus, digests, days=14, end=year_back)
        p50, p95 = (np.percentile(times, [50, 95]) * 1000).tolist()
        print(f"  then blocks of digests of those 2 weeks: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
        started = time.perf_counter()
        engine.related(corpus.article(len(corpus) - 1))
        print(f"back to the present                 {time.perf_counter() - started:7.2f} s")

        newer = newer_articles(corpus, adds, days=30)
        upserts, adds = add_stored_one_at_a_time(store, engine, newer)
        print(
            f"add, one at a time, terms stored    {adds / len(newer) * 1000:7.2f} ms   "
            f"goal <= 5 ms ({len(newer):,} newer articles over 30 days, evictions and "
            f"merges included; the upsert {upserts / len(newer) * 1000:.2f} ms more; "
            f"{len(engine.index):,} held after)"
        )
        print(f"peak RSS (whole run)                {peak_rss_mb():7.0f} MB   goal <= 1,024 MB")


def newer_articles(corpus: Corpus, count: int, *, days: int) -> list[Article]:
    """`count` articles published over the `days` after the corpus's newest."""
    extra = Corpus(count, days, seed=SEED + 2, prefix="n")
    shift = timedelta(seconds=int(corpus.seconds[-1]) + 1)
    return [a.with_changes(published=a.published + shift, updated=a.updated + shift) for a in extra]


def store_part(corpus: Corpus, extra: list[Article]) -> None:
    config = Config(version=1, site=Site(title="bench", url="https://kabar.example.id"))
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(f"sqlite:///{folder}/bench.db") as store,
    ):
        started = time.perf_counter()
        batch: list[Article] = []
        for article in corpus:
            batch.append(article)
            if len(batch) == 1000:
                store.upsert(batch)
                batch.clear()
        store.upsert(batch)
        print(f"store: upsert {len(corpus):,} articles    {time.perf_counter() - started:7.2f} s")

        started = time.perf_counter()
        RelatedEngine.open(config, store).add(store.articles(newest_first=False))
        print(
            "store: analyse and store their terms "
            f"{time.perf_counter() - started:7.2f} s  (what ingest adds, no index loaded)"
        )

        path = snapshot.path_for(store)
        assert path is not None and not path.exists()
        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()  # no snapshot yet: reads every stored row, then writes the snapshot
        first_load = time.perf_counter() - started
        started = time.perf_counter()
        snapshot.save(path, engine.index, "id", engine.span)
        writing = time.perf_counter() - started
        persisted = first_load - writing
        print(
            f"start-up, stored terms read         {persisted:7.2f} s  "
            f"(then the index snapshot written beside the database: {writing:.2f} s, "
            f"{path.stat().st_size / 2**20:,.0f} MB)"
        )
        del engine

        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()
        restored = time.perf_counter() - started
        print(f"start-up, from the snapshot         {restored:7.2f} s  (store compared with it)")

        upserts, adds = add_stored_one_at_a_time(store, engine, extra)
        print(
            f"add, one at a time, terms stored    {adds / len(extra) * 1000:7.2f} ms   "
            f"goal <= 5 ms (one full merge included; the article's own upsert "
            f"{upserts / len(extra) * 1000:.2f} ms more)"
        )
        del engine

        with store.engine.begin() as connection:
            connection.execute(related_features.delete())
        started = time.perf_counter()
        rebuilt = RelatedEngine.build(store.articles(newest_first=False), site_language="id")
        rebuild = time.perf_counter() - started
        print(
            f"start-up, rebuilt from the store    {rebuild:7.2f} s  "
            "(every article read and analysed again)"
        )
        print(
            f"start-up: the snapshot is {rebuild / restored:.1f}x faster than rebuilding, "
            f"stored terms alone {rebuild / persisted:.1f}x"
        )
        del rebuilt


if __name__ == "__main__":
    main()
