"""Related-news speed on 100,000 generated articles over 365 days (seeded).

Prints: index build time, incremental add per article, p50/p95 time of the related block
of each item of 12-item digests, peak RSS; then, against a SQLite store holding the same
articles, the start-up time with stored terms (persisted) against analysing everything
again (rebuilt), and the add per article including storing its terms.

Usage: python bench/related_speed.py [--articles 100000] [--days 365] [--no-store]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kabar.config import Related
from kabar.model import Article, article_id
from kabar.related import RelatedEngine
from kabar.store import Store
from kabar.store.tables import related_features

SEED = 20240501
START = datetime(2024, 1, 1, tzinfo=UTC)
WIB = timedelta(hours=7)


def vocabulary() -> list[str]:
    import Sastrawi

    path = Path(Sastrawi.__file__).parent / "Stemmer" / "data" / "kata-dasar.txt"
    words = [w.strip() for w in path.read_text(encoding="utf-8").split("\n")]
    return sorted(w for w in words if w.isalpha() and 4 <= len(w) <= 10)


def generate(count: int, days: int, *, seed: int = SEED, prefix: str = "a") -> list[Article]:
    """News-like articles: 200 topics with their own words, ~220-word bodies, tags."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary())
    rng.shuffle(words)
    common, topical = words[:600], words[600:10600].reshape(200, 50)
    seconds = np.sort(rng.integers(0, days * 86400, count))
    articles = []
    for i in range(count):
        topic = topical[rng.integers(len(topical))]
        story = rng.choice(topic, 6, replace=False)
        kind = rng.random(230)
        body = np.where(
            kind < 0.25,
            rng.choice(story, 230),
            np.where(kind < 0.6, rng.choice(topic, 230), rng.choice(common, 230)),
        )
        sentences = [" ".join(body[j : j + 12]).capitalize() + "." for j in range(0, 230, 12)]
        title = " ".join([*story[:3], *rng.choice(topic, 3)]).capitalize()
        published = (START + timedelta(seconds=int(seconds[i]))).astimezone(
            __import__("datetime").timezone(WIB)
        )
        guid = f"{prefix}{i}"
        articles.append(
            Article(
                id=article_id("bench", guid),
                guid=guid,
                source="bench",
                url=f"https://kabar.example.id/read/{prefix}{i}",
                title=title,
                summary=sentences[0],
                body_text="\n\n".join(sentences),
                section=f"rubrik-{int(rng.integers(12))}",
                tags=tuple(story[:2]),
                published=published,
                updated=published,
            )
        )
    return articles


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def block_times(engine: RelatedEngine, articles: list[Article], digests: int) -> list[float]:
    """Time each related block of `digests` 12-item digests spread over the last months."""
    rng = np.random.default_rng(SEED)
    settings = Related()
    times = []
    end = articles[-1].published
    for _ in range(digests):
        issue_time = end - timedelta(days=float(rng.uniform(0, 90)))
        day = [a for a in articles if issue_time - timedelta(hours=24) <= a.published < issue_time]
        for article in day[-12:]:
            started = time.perf_counter()
            engine.related(article, before=issue_time, settings=settings)
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--digests", type=int, default=50)
    parser.add_argument("--no-store", action="store_true", help="skip the SQLite start-up part")
    args = parser.parse_args()

    started = time.perf_counter()
    articles = generate(args.articles, args.days)
    extra = generate(1000, args.days, seed=SEED + 1, prefix="x")
    print(
        f"generated {len(articles):,} articles over {args.days} days "
        f"in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    engine = RelatedEngine.build(articles, site_language="id")
    build = time.perf_counter() - started
    print(f"build (analyse + index, in memory)   {build:7.2f} s    goal <= 60 s")
    print(f"index arrays                          {engine.index.nbytes() / 2**20:7.0f} MB")

    started = time.perf_counter()
    for article in extra:
        engine.add([article])
    add = (time.perf_counter() - started) / len(extra) * 1000
    print(
        f"add, one article at a time           {add:7.2f} ms   "
        f"goal <= 5 ms (1,000 adds, merges included)"
    )

    engine.related(articles[-1])  # warm the caches once
    times = block_times(engine, articles, args.digests)
    p50, p95 = (np.percentile(times, [50, 95]) * 1000).tolist()
    print(
        f"related block, {len(times)} blocks of {args.digests} 12-item digests: "
        f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, mean "
        f"{statistics.mean(times) * 1000:.2f} ms   goal p95 <= 10 ms"
    )
    print(f"peak RSS (in-memory part)            {peak_rss_mb():7.0f} MB   goal <= 1,536 MB")
    del engine
    if not args.no_store:
        store_part(articles, extra)


def store_part(articles: list[Article], extra: list[Article]) -> None:
    from kabar.config import Config, Site

    config = Config(version=1, site=Site(title="bench", url="https://kabar.example.id"))
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(f"sqlite:///{folder}/bench.db") as store,
    ):
        started = time.perf_counter()
        for start in range(0, len(articles), 1000):
            store.upsert(articles[start : start + 1000])
        print(
            f"store: upsert {len(articles):,} articles into SQLite  "
            f"{time.perf_counter() - started:7.2f} s"
        )

        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.add(articles)
        print(
            f"store: analyse and store terms (no index loaded)  "
            f"{time.perf_counter() - started:7.2f} s"
        )

        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()
        persisted = time.perf_counter() - started
        print(f"start-up, persisted terms loaded   {persisted:7.2f} s")

        started = time.perf_counter()
        store.upsert(extra[:200])
        for article in extra[:200]:
            engine.add([article])
        print(
            "add with upsert + stored terms     "
            f"{(time.perf_counter() - started) / 200 * 1000:7.2f} ms/article"
        )

        with store.engine.begin() as connection:
            connection.execute(related_features.delete())
        started = time.perf_counter()
        engine = RelatedEngine.open(config, store)
        engine.load()
        rebuilt = time.perf_counter() - started
        print(
            f"start-up, rebuilt from the store   {rebuilt:7.2f} s  (every article analysed again)"
        )
        print(f"peak RSS (whole run)                 {peak_rss_mb():7.0f} MB")


if __name__ == "__main__":
    main()
