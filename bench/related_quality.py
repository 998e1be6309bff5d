"""Related-news quality.

1. Same-category precision@5 on SIB-200 (Indonesian and English): every sentence asks for
   its 5 most related among all the others; P@5 is the share of those in its category,
   with a 95% bootstrap interval (1,000 resamples of the queries, seeded). Plain word
   TF-IDF (scikit-learn defaults) runs in the same run as the baseline, along with the two
   analyser choices alone (Sastrawi words / character 3–4-grams) that the engine combines.
2. Near-copies: a generated corpus (seeded) where stories have planted near-copies
   (syndicated copies, retitled copies, lightly edited copies). The share of blocks that
   show a copy of the article itself or two copies of one story; goal 0. The same
   corpus without the near-copy cut shows how often it would happen.

Usage: python bench/related_quality.py [--sib200 DIR] [--quick]
SIB-200 (CC BY-SA 4.0, Adelani et al. 2023) is read from ../shared/data/sib200 by default.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from kabar.config import Related
from kabar.model import Article, article_id
from kabar.related import RelatedEngine
from kabar.related import engine as engine_module
from kabar.related.analysis import analyser_for, tokens
from kabar.related.terms import char_grams
from kabar.related.vectors import WORD_SHARE

ROOT = Path(__file__).resolve().parents[1]
SIB200 = ROOT.parent / "shared" / "data" / "sib200"
LANGUAGES = {"id": "ind_Latn", "en": "eng_Latn"}
SEED = 20240501
START = datetime(2024, 1, 1, tzinfo=UTC)


# --- SIB-200 -----------------------------------------------------------------------------


def read_sib200(folder: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for split in ("train", "dev", "test"):
        with (folder / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts.append(row["text"])
                labels.append(row["category"])
    return texts, np.array(labels)


def precision_at_5(rankings: Sequence[Sequence[int]], labels: np.ndarray) -> np.ndarray:
    return np.array(
        [np.mean(labels[list(top[:5])] == labels[q]) if len(top) else 0.0
         for q, top in enumerate(rankings)]
    )  # fmt: skip


def brute_force(matrix: csr_matrix) -> list[list[int]]:
    sims = (matrix @ matrix.T).toarray()
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :5].tolist()


def engine_rankings(texts: Sequence[str], language: str) -> list[list[int]]:
    """The engine end to end: every sentence an article, all inside one window."""
    articles = [
        Article(
            id=f"{i:06d}",
            guid=str(i),
            source="sib200",
            url=f"https://sib200.test/{i}",
            title="",
            summary=text,
            body_text=text,
            language=language,
            published=START + timedelta(minutes=i),
            updated=START,
        )
        for i, text in enumerate(texts)
    ]
    engine = RelatedEngine.build(articles, site_language=language)
    settings = Related(per_item=5, min_items=0, min_score=0, window="3650d", half_life="3650d")
    after_all = START + timedelta(days=365)
    return [
        [
            int(item.article_id or "0")
            for item in engine.related(a, before=after_all, settings=settings)
        ]
        for a in articles
    ]


def bootstrap(hits: np.ndarray, resamples: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(SEED)
    means = hits[rng.integers(0, len(hits), (resamples, len(hits)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def sib200_report(folder: Path) -> None:
    print("SIB-200 same-category P@5 (1,004 sentences each; 95% bootstrap interval)")
    for language, name in LANGUAGES.items():
        texts, labels = read_sib200(folder / name)
        analyser = analyser_for(language)
        words = TfidfVectorizer(analyzer=analyser.words, sublinear_tf=True).fit_transform(texts)
        grams = TfidfVectorizer(
            analyzer=partial(_gram_list, language=language),
            sublinear_tf=True,
        ).fit_transform(texts)
        both = normalize(hstack([words * WORD_SHARE, grams]).tocsr())
        variants = {
            "plain word TF-IDF (baseline)": brute_force(TfidfVectorizer().fit_transform(texts)),
            "stop words + Sastrawi/S-stem words": brute_force(words),
            "character 3-4-grams": brute_force(grams),
            "words + grams, brute force": brute_force(both),
            "kabar engine (words + grams)": engine_rankings(texts, language),
        }
        for label, rankings in variants.items():
            hits = precision_at_5(rankings, labels)
            low, high = bootstrap(hits)
            print(f"  {language}  {label:38s} P@5 {hits.mean():.4f}  [{low:.4f}, {high:.4f}]")


def _non_stop(text: str, language: str) -> list[str]:
    from kabar.related.analysis import ENGLISH_STOP_WORDS, INDONESIAN_STOP_WORDS

    stop = INDONESIAN_STOP_WORDS if language == "id" else ENGLISH_STOP_WORDS
    return [t for t in tokens(text) if t not in stop]


def _gram_list(text: str, language: str) -> list[str]:
    return _expand(char_grams(_non_stop(text, language)))


def _expand(counts: dict[str, int]) -> list[str]:
    return [gram for gram, count in counts.items() for _ in range(count)]


# --- generated corpus with planted near-copies ---------------------------------------


def vocabulary() -> list[str]:
    """Indonesian root words from Sastrawi's dictionary (shipped with the package)."""
    import Sastrawi

    path = Path(Sastrawi.__file__).parent / "Stemmer" / "data" / "kata-dasar.txt"
    words = [w.strip() for w in path.read_text(encoding="utf-8").split("\n")]
    return sorted(w for w in words if w.isalpha() and 4 <= len(w) <= 10)


class Corpus:
    """News-like articles: topics with their own vocabulary, stories within topics."""

    def __init__(self, seed: int = SEED, topics: int = 60) -> None:
        self.rng = random.Random(seed)
        words = vocabulary()
        self.rng.shuffle(words)
        self.common = words[:400]
        per_topic = 80
        self.topics = [
            words[400 + t * per_topic : 400 + (t + 1) * per_topic] for t in range(topics)
        ]
        self.serial = 0

    def sentence(self, topic: list[str], story: list[str]) -> str:
        rng = self.rng
        picks = [
            rng.choice(story)
            if r < 0.3
            else rng.choice(topic)
            if r < 0.65
            else rng.choice(self.common)
            for r in (rng.random() for _ in range(rng.randint(8, 16)))
        ]
        return " ".join(picks).capitalize() + "."

    def article(
        self, published: datetime, *, topic_id: int | None = None, words: int = 220
    ) -> tuple[Article, int]:
        rng = self.rng
        topic_id = rng.randrange(len(self.topics)) if topic_id is None else topic_id
        topic = self.topics[topic_id]
        story = rng.sample(topic, 6)
        title = " ".join(rng.sample(story, 3) + rng.sample(topic, 3)).capitalize()
        sentences: list[str] = []
        while sum(len(s.split()) for s in sentences) < words:
            sentences.append(self.sentence(topic, story))
        body = " ".join(sentences)
        self.serial += 1
        guid = f"story-{self.serial}"
        return (
            Article(
                id=article_id("gen", guid),
                guid=guid,
                source="gen",
                url=f"https://kabar.example.id/read/{self.serial}/{'-'.join(title.split()[:4]).lower()}",
                title=title,
                summary=sentences[0],
                body_text=body,
                section=f"rubrik-{topic_id % 8}",
                tags=tuple(rng.sample(story, 2)),
                published=published,
                updated=published,
            ),
            topic_id,
        )

    def near_copy(self, original: Article, published: datetime, kind: int) -> Article:
        """A planted near-copy: 0 syndicated (same text, other URL), 1 retitled with a line
        added, 2 a few words edited, 3 same URL with tracking parameters."""
        rng = self.rng
        self.serial += 1
        guid = f"copy-{self.serial}"
        title, body, url = original.title, original.body_text, original.url
        if kind == 0:
            url = f"https://mitra.example.com/berita/{self.serial}"
        elif kind == 1:
            title = title + " - Update"
            body = body + " Baca berita selengkapnya di situs kami."
            url = f"{url}-update"
        elif kind == 2:
            words = body.split()
            for _ in range(max(1, len(words) // 100)):
                words[rng.randrange(len(words))] = rng.choice(self.common)
            body = " ".join(words)
            url = f"https://kabar.example.id/amp/{self.serial}"
        else:
            url = f"{url}?utm_source=wa&utm_medium=share"
        return original.with_changes(
            id=article_id("gen", guid), guid=guid, url=url, title=title, body_text=body,
            published=published, updated=published,
        )  # fmt: skip


def near_copy_report(stories: int = 3000) -> None:
    corpus = Corpus()
    articles: list[Article] = []
    story_of: dict[str, str] = {}
    span = timedelta(days=60)
    for _ in range(stories):
        moment = START + span * corpus.rng.random()
        article, _topic = corpus.article(moment)
        articles.append(article)
        story_of[article.id] = article.id
        if corpus.rng.random() < 0.3:  # ~30% of stories are copied 1-3 times
            for _ in range(corpus.rng.randint(1, 3)):
                copy_time = moment + timedelta(hours=corpus.rng.uniform(0.5, 72))
                copy = corpus.near_copy(article, copy_time, corpus.rng.randrange(4))
                articles.append(copy)
                story_of[copy.id] = article.id
    engine = RelatedEngine.build(articles, site_language="id")
    queries = [a for a in articles if a.published >= START + timedelta(days=30)]
    settings = Related(per_item=3, min_score=0.05)
    print(
        f"Near-copies: {len(articles)} generated articles, "
        f"{sum(1 for a, s in story_of.items() if a != s)} planted copies, {len(queries)} blocks"
    )
    for label, threshold in (
        ("with the near-copy cut", 0.95),
        ("without it (cosine cut off)", 2.0),
    ):
        engine_module.NEAR_COPY = threshold
        blocks = [engine.related(a, settings=settings) for a in queries]
        bad = sum(_has_copy(a, items, story_of) for a, items in zip(queries, blocks, strict=True))
        shown = sum(1 for items in blocks if items)
        print(
            f"  {label:30s} blocks shown {shown}, holding a near-copy {bad} "
            f"(share {bad / max(shown, 1):.4f})"
        )
    engine_module.NEAR_COPY = 0.95


def _has_copy(article: Article, items: Sequence[object], story_of: dict[str, str]) -> bool:
    stories = [story_of[item.article_id] for item in items if item.article_id]  # type: ignore[attr-defined]
    return story_of[article.id] in stories or len(set(stories)) < len(stories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sib200", type=Path, default=SIB200, help="folder with ind_Latn/, eng_Latn/"
    )
    parser.add_argument(
        "--quick", action="store_true", help="near-copies over 300 stories only: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        near_copy_report(stories=300)
        return
    if not args.sib200.is_dir():
        sys.exit(f"related_quality: no SIB-200 data at {args.sib200}")
    sib200_report(args.sib200)
    near_copy_report()


if __name__ == "__main__":
    main()
