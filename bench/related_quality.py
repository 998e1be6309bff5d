"""Related-news quality.

1. IndoSum (3,463 real Indonesian news articles with categories and dates): the newest
   half are the queries; each asks for a block of 3 among the earlier articles within the
   configured window (30 days). For kabar with its default config, and for plain TF-IDF
   (scikit-learn, sublinear tf, min_df 2, the same window, top 3) on the same queries, it
   prints coverage (the share of queries with a full block), same-category precision@3 of
   the blocks shown with a 95% bootstrap interval ("showbiz" and "hiburan" count as one
   category: both are entertainment), and the share of blocks holding a near-copy (an
   item whose plain word TF-IDF cosine with the article, or with another item of the
   block, is at least 0.9).
2. Same-category precision@5 on SIB-200 (Indonesian and English): every sentence asks for
   its 5 most related among all the others; P@5 is the share of those in its category,
   with a 95% bootstrap interval (1,000 resamples of the queries, seeded). Plain word
   TF-IDF (scikit-learn defaults) runs in the same run as the baseline, along with the two
   analyser choices alone (Sastrawi words / character 3–4-grams) that the engine combines.
3. Near-copies: a generated corpus (seeded) where stories have planted near-copies
   (syndicated copies, retitled copies, lightly edited copies). The share of blocks that
   show a copy of the article itself or two copies of one story; goal 0. The same
   corpus without the near-copy cut shows how often it would happen.

4. With `--engine-variants`: changes measured through the engine itself (score floors,
   recency half-lives, the re-rank without neighbourhoods or with other shares, topic
   dimensions, landmark counts and neighbourhood sizes, words kept per row, no stemming
   or only particles and possessives off, the lead weighed twice, the body cut short),
   and each query as a summary-only feed gives it (title and first paragraph) against
   the whole earlier articles, by score floor.

5. With `--variants`: candidate changes to the ranking, measured by brute force on
   IndoSum (the engine's own weighted rows, every candidate in the window scored; no
   near-copy or diversity filtering, so figures sit a little off the engine's): latent
   topic dimensions, a floor relative to each article's own scores, named-entity overlap,
   BM25 mixed with topics, topic-space feedback, hubness correction, the block's
   coherence, recency, and neighbourhood agreement with its settings and seeds (also on
   the odd and even queries apart). Each prints coverage and P@3 with its interval.

Usage: python bench/related_quality.py [--data DIR] [--quick] [--variants | --engine-variants]
IndoSum (CC BY-SA 4.0, Kurniawan & Louvan 2018) and SIB-200 (CC BY-SA 4.0, Adelani et al.
2023) are read from ../shared/data/indosum and ../shared/data/sib200 beside the repository
by default; neither is copied into it. `--quick` measures small subsets in a few seconds
(a smoke run: its figures are not the ones to quote) and skips a corpus that is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from kabar.config import Related
from kabar.model import Article, article_id
from kabar.related import RelatedEngine, vectors
from kabar.related import engine as engine_module
from kabar.related import topics as topics_module
from kabar.related.analysis import IndonesianAnalyser, analyser_for, tokens
from kabar.related.terms import analyse, char_grams
from kabar.related.vectors import WORD_FEATURES, WORD_SHARE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LANGUAGES = {"id": "ind_Latn", "en": "eng_Latn"}
SEED = 20240501
START = datetime(2024, 1, 1, tzinfo=UTC)


# --- IndoSum -----------------------------------------------------------------------------

ENTERTAINMENT = {"showbiz": "hiburan"}  # both are entertainment: one category
BLOCK = 3
NEAR_COPY_COSINE = 0.9
QUICK_ARTICLES = 700


@dataclass(frozen=True)
class IndoSum:
    articles: list[Article]  # oldest first
    labels: np.ndarray  # category, entertainment merged
    queries: list[int]  # the newest half


def read_indosum(path: Path, limit: int | None = None) -> IndoSum:
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rows.sort(key=lambda row: row["published"])
    if limit is not None:
        rows = rows[:limit]
    articles = [
        Article(
            id=article_id("indosum", row["url"]),
            guid=row["url"],
            source=row["source"],
            url=row["url"],
            title=row["title"],
            summary="",
            body_text=row["body"],
            language="id",
            published=datetime.fromisoformat(row["published"]),
            updated=datetime.fromisoformat(row["published"]),
        )
        for row in rows
    ]
    labels = np.array([ENTERTAINMENT.get(row["category"], row["category"]) for row in rows])
    return IndoSum(articles, labels, list(range(len(rows) // 2, len(rows))))


def indosum_engine(corpus: IndoSum, settings: Related) -> list[list[int]]:
    """kabar's blocks: each query's items, as corpus positions."""
    engine = RelatedEngine.build(corpus.articles, site_language="id", defaults=settings)
    position = {a.id: i for i, a in enumerate(corpus.articles)}
    return [
        [position[i.article_id] for i in engine.related(corpus.articles[q]) if i.article_id]
        for q in corpus.queries
    ]


def plain_tfidf(corpus: IndoSum) -> csr_matrix:
    texts = [f"{a.title}\n\n{a.body_text}" for a in corpus.articles]
    matrix: csr_matrix = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(texts)
    return matrix


def in_window(corpus: IndoSum, window: timedelta) -> np.ndarray:
    """[query, article]: whether the article is a candidate of the query (earlier, inside
    the window)."""
    times = np.array([a.published.timestamp() for a in corpus.articles])
    query_times = times[corpus.queries][:, None]
    return (times[None, :] < query_times) & (times[None, :] >= query_times - window.total_seconds())


def tfidf_blocks(corpus: IndoSum, matrix: csr_matrix, window: timedelta) -> list[list[int]]:
    sims = (matrix[corpus.queries] @ matrix.T).toarray()
    sims[~in_window(corpus, window) | (sims <= 0)] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :BLOCK]
    return [[int(i) for i in row if np.isfinite(sims[q, i])] for q, row in enumerate(top)]


@dataclass(frozen=True)
class BlockScores:
    coverage: float
    precision: float
    interval: tuple[float, float]
    near_copies: float
    shown: int
    word_cosine: float  # mean plain TF-IDF cosine of the items with their article


def score_blocks(corpus: IndoSum, matrix: csr_matrix, blocks: list[list[int]]) -> BlockScores:
    shown = [(q, items) for q, items in zip(corpus.queries, blocks, strict=True) if items]
    hits = np.array([np.mean(corpus.labels[items] == corpus.labels[q]) for q, items in shown])
    copies = sum(_holds_copy(matrix, q, items) for q, items in shown)
    full = sum(len(items) >= BLOCK for items in blocks)
    closeness = [float((matrix[q] @ matrix[items].T).mean()) for q, items in shown]
    return BlockScores(
        coverage=full / len(blocks),
        precision=float(hits.mean()) if len(hits) else 0.0,
        interval=bootstrap(hits) if len(hits) else (0.0, 0.0),
        near_copies=copies / max(len(shown), 1),
        shown=len(shown),
        word_cosine=float(np.mean(closeness)) if closeness else 0.0,
    )


def _holds_copy(matrix: csr_matrix, query: int, items: list[int]) -> bool:
    rows = [query, *items]
    sims = (matrix[rows] @ matrix[rows].T).toarray()
    np.fill_diagonal(sims, 0)
    return bool((sims >= NEAR_COPY_COSINE).any())


def indosum_report(path: Path, *, quick: bool = False) -> None:
    corpus = read_indosum(path, QUICK_ARTICLES if quick else None)
    settings = Related()
    matrix = plain_tfidf(corpus)
    print(
        f"IndoSum: {len(corpus.articles)} articles, {len(corpus.queries)} queries (the newest "
        f"half), blocks of {BLOCK} from earlier articles within {settings.window.days} days; "
        "P@3 same category (showbiz+hiburan one), 95% bootstrap interval"
    )
    variants = {
        "plain TF-IDF (sublinear, min_df 2)": tfidf_blocks(corpus, matrix, settings.window),
        "kabar, default config": indosum_engine(corpus, settings),
    }
    for label, blocks in variants.items():
        s = score_blocks(corpus, matrix, blocks)
        low, high = s.interval
        print(
            f"  {label:36s} coverage {s.coverage:.3f}  P@3 {s.precision:.4f} "
            f"[{low:.4f}, {high:.4f}] of {s.shown} blocks  near-copy share {s.near_copies:.4f}  "
            f"items' word cosine {s.word_cosine:.4f}"
        )


# --- IndoSum: changes measured through the engine ---------------------------------------

_PARTICLE = re.compile(r"(?<=\w{3})(?:lah|kah|tah|pun)$")
_POSSESSIVE = re.compile(r"(?<=\w{3})(?:nya|ku|mu)$")


def _light_stem(_analyser: object, token: str) -> str:
    """Particles and possessives off, prefixes and derivations kept (pemain ≠ main)."""
    return _POSSESSIVE.sub("", _PARTICLE.sub("", token))


@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    """`owner.name` set to `value` for the block, with fresh analysers (their token
    caches hold words made the old way)."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    analyser_for.cache_clear()
    try:
        yield
    finally:
        setattr(owner, name, old)
        analyser_for.cache_clear()


@contextmanager
def _constants(module: object, values: dict[str, float]) -> Iterator[None]:
    """A module's constants set to `values` for the block."""
    with ExitStack() as stack:
        for name, value in values.items():
            stack.enter_context(_patched(module, name, value))
        yield


def _with_bodies(corpus: IndoSum, body: Callable[[list[str]], list[str]]) -> IndoSum:
    articles = [
        replace(a, body_text="\n\n".join(body(a.body_text.split("\n\n")))) for a in corpus.articles
    ]
    return IndoSum(articles, corpus.labels, corpus.queries)


def _lead_blocks(corpus: IndoSum, settings: Related) -> list[list[int]]:
    """Each query as a summary-only feed gives it (its title and first paragraph) against
    the whole earlier articles."""
    engine = RelatedEngine.build(corpus.articles, site_language="id", defaults=settings)
    position = {a.id: i for i, a in enumerate(corpus.articles)}
    blocks = []
    for q in corpus.queries:
        full = corpus.articles[q]
        lead = replace(
            full, id=f"{full.id}-lead", url=f"{full.url}#lead",
            body_text=full.body_text.split("\n\n")[0],
        )  # fmt: skip
        items = engine.related(lead, before=full.published, settings=settings)
        blocks.append([position[i.article_id] for i in items if i.article_id in position])
    return blocks


def engine_variants_report(path: Path, *, quick: bool = False) -> None:
    corpus = read_indosum(path, QUICK_ARTICLES if quick else None)
    matrix = plain_tfidf(corpus)
    floor = Related().min_score
    print(f"IndoSum changes through the engine (floor {floor}; coverage, P@3 and interval)")

    def show(label: str, blocks: list[list[int]]) -> None:
        s = score_blocks(corpus, matrix, blocks)
        low, high = s.interval
        interval = f"[{low:.4f}, {high:.4f}]"
        print(
            f"  {label:46s} coverage {s.coverage:.3f}  P@3 {s.precision:.4f} {interval}  "
            f"items' word cosine {s.word_cosine:.4f}"
        )

    show("default", indosum_engine(corpus, Related()))
    for other_floor in (0.1, 0.12, 0.15, 0.16, 0.18):
        show(f"floor {other_floor}", indosum_engine(corpus, Related(min_score=other_floor)))
    for days in (7, 14, 36500):
        settings = Related(half_life=timedelta(days=days))
        show(f"recency half-life {days} days", indosum_engine(corpus, settings))
    names = ("COSINE_SHARE", "TOPIC_SHARE", "NEIGHBOURHOOD_SHARE")  # of the re-ranked text score
    mixes = {(0.5, 0.5, 0): (0.14, 0.15), (0.5, 0.1, 0.4): (0.15,), (0.5, 0, 0.5): (0.15,),
             (0.25, 0.25, 0.5): (0.2,), (1 / 3, 1 / 3, 1 / 3): (0.18,)}  # fmt: skip
    for mix, floors in mixes.items():
        for mix_floor in floors:
            with _constants(engine_module, dict(zip(names, mix, strict=True))):
                blocks = indosum_engine(corpus, Related(min_score=mix_floor))
            shares = "/".join(f"{m:.2g}" for m in mix)
            show(f"shares {shares}, floor {mix_floor}", blocks)
    for dimensions in (50, 150):
        with _constants(topics_module, {"DIMENSIONS": dimensions}):
            show(f"{dimensions} topic dimensions (default 100)", indosum_engine(corpus, Related()))
    for landmarks in (250, 1000):
        with _constants(topics_module, {"LANDMARKS": landmarks}):
            show(f"{landmarks} landmarks (default 500)", indosum_engine(corpus, Related()))
    for share in (0.05, 0.2):
        with _constants(topics_module, {"NEIGHBOURHOOD": share}):
            show(f"neighbourhood of {share:.0%} of landmarks (default 10%)",
                 indosum_engine(corpus, Related()))  # fmt: skip
    for keep in (256, 1000):
        with _patched(vectors, "KEEP_WORDS", keep):
            show(f"{keep} words kept per article (default 128)", indosum_engine(corpus, Related()))
    with _patched(IndonesianAnalyser, "normalise", lambda _analyser, token: token):
        show("no stemming", indosum_engine(corpus, Related()))
    with _patched(IndonesianAnalyser, "normalise", _light_stem):
        show("particles and possessives only", indosum_engine(corpus, Related()))
    bodies = {
        "the lead paragraphs counted twice": lambda p: p[:2] + p,
        "the body cut to its first 4 paragraphs": lambda p: p[:4],
        "the body cut to its first 6 paragraphs": lambda p: p[:6],
    }
    for label, body in bodies.items():
        changed = _with_bodies(corpus, body)
        show(label, indosum_engine(changed, Related()))
    print("IndoSum queries as title and lead paragraph only, against whole articles, by floor")
    for lead_floor in (0.02, 0.04, 0.05, 0.1, floor):
        blocks = _lead_blocks(corpus, Related(min_score=lead_floor, fill="none"))
        show(f"floor {lead_floor}", blocks)


# --- IndoSum: ranking variants, by brute force ----------------------------------------


class Variants:
    """The engine's weighted rows of every IndoSum article, and the scores the variants
    mix: word cosine, topic similarity, recency, each [query, article]."""

    def __init__(self, corpus: IndoSum, settings: Related) -> None:
        from kabar.related import topics

        self.corpus, self.settings, self.topics = corpus, settings, topics
        engine = RelatedEngine.build(corpus.articles, site_language="id", defaults=settings)
        self.engine = engine
        numbers = [engine.index.by_id[a.id] for a in corpus.articles]
        self.rows = engine.index.weighted_rows(numbers)
        indptr, indices, weights = self.rows
        self.matrix = csr_matrix((weights, indices, indptr))
        self.queries = np.array(corpus.queries)
        self.cosine = (self.matrix[self.queries] @ self.matrix.T).toarray()
        self.window = in_window(corpus, settings.window) & (self.cosine > 0)
        self.window &= self.cosine < engine_module.NEAR_COPY
        times = np.array([a.published.timestamp() for a in corpus.articles])
        self.age = np.clip(times[self.queries][:, None] - times[None, :], 0, None)

    def topic_vectors(self, dimensions: int) -> np.ndarray:
        default = self.topics.DIMENSIONS
        self.topics.DIMENSIONS = dimensions
        try:
            fitted = self.topics.Topics.fit(*self.rows, len(self.corpus.articles))
        finally:
            self.topics.DIMENSIONS = default
        assert fitted is not None
        return fitted.vectors(*self.rows)

    def recency(self, half_life_days: float) -> np.ndarray:
        floor = engine_module.RECENCY_FLOOR
        result: np.ndarray = floor + (1 - floor) * 0.5 ** (self.age / (half_life_days * 86400))
        return result

    def report(
        self, label: str, score: np.ndarray, *, floor: float | None = None, shown: object = None
    ) -> np.ndarray:
        """Print a variant's coverage and P@3; returns its per-query hits (0 unshown)."""
        scores = np.where(self.window, score, -np.inf)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :BLOCK]
        best = np.take_along_axis(scores, top, 1)
        full = np.isfinite(best).all(axis=1)
        if floor is not None:
            full &= (best >= floor).all(axis=1)
        if shown is not None:
            full &= np.asarray(shown, dtype=bool)
        labels = self.corpus.labels
        hits = (labels[top] == labels[self.queries][:, None]).mean(axis=1)
        low, high = bootstrap(hits[full])
        print(
            f"  {label:58s} coverage {full.mean():.3f}  P@3 {hits[full].mean():.4f} "
            f"[{low:.4f}, {high:.4f}]"
        )
        return np.where(full, hits, 0.0)


def variants_report(path: Path, *, quick: bool = False) -> None:
    corpus = read_indosum(path, QUICK_ARTICLES if quick else None)
    v = Variants(corpus, Related())
    print("IndoSum ranking variants, brute force over the engine's rows (see the docstring)")
    week = v.recency(Related().half_life.total_seconds() / 86400)
    topic = {d: v.topic_vectors(d) for d in (50, 100, 150, 200, 300)}
    similarity = {d: np.maximum(t[v.queries] @ t.T, 0) for d, t in topic.items()}
    mix = 0.8 * (v.cosine + similarity[100]) / 2 * week
    v.report("word cosine alone (recency, floor 0)", 0.8 * v.cosine * week)
    v.report("cosine + 100 topics, half each (floor 0)", mix)
    for dimensions in (50, 150, 200, 300):
        score = 0.8 * (v.cosine + similarity[dimensions]) / 2 * week
        v.report(f"  {dimensions} topic dimensions (floor 0)", score)
    for days in (14, 30, 10**6):
        score = 0.8 * (v.cosine + similarity[100]) / 2 * v.recency(days)
        v.report(f"  recency half-life {days} days (floor 0)", score)
    _relative_floors(v, mix)
    _other_signals(v, mix, similarity[100], week)
    _neighbourhoods(v, similarity[100], week)


def _relative_floors(v: Variants, mix: np.ndarray) -> None:
    """A floor relative to each article's own scores: a block only where its third item
    keeps a fraction of the best, or where a confidence measure passes the level that
    leaves 95% of articles a block."""
    ranked = -np.sort(-np.where(v.window, mix, -np.inf), axis=1)[:, :20]
    third, best = ranked[:, BLOCK - 1], ranked[:, 0]
    for fraction in (0.5, 0.6, 0.7):
        v.report(f"third >= {fraction} x best (3 or nothing)", mix, shown=third >= fraction * best)
    with np.errstate(invalid="ignore"):
        measures = {
            "third score": third,
            "third / best": third / best,
            "mean of the three": ranked[:, :BLOCK].mean(axis=1),
            "third - tenth": third - ranked[:, 9],
        }
    for name, measure in measures.items():
        measure = np.nan_to_num(measure, nan=-np.inf, neginf=-np.inf)
        level = np.quantile(measure[np.isfinite(measure)], 0.05)
        v.report(f"95% coverage kept by {name}", mix, shown=measure >= level)


def _other_signals(v: Variants, mix: np.ndarray, topics: np.ndarray, week: np.ndarray) -> None:
    import re

    from sklearn.preprocessing import normalize

    corpus, queries = v.corpus, v.queries
    name = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:\s[A-Z][a-z]+)*)")

    def entities(article: Article) -> list[str]:
        return [e.lower() for e in name.findall(f"{article.title}. {article.body_text}")]

    named = TfidfVectorizer(analyzer=entities, sublinear_tf=True, min_df=2)
    found = named.fit_transform(corpus.articles)
    shared = (found[queries] @ found.T).toarray()
    for share in (0.1, 0.2, 0.3):
        score = ((1 - share) * (v.cosine + topics) / 2 + share * shared) * week
        v.report(f"named entities (capitalised names), share {share}", score)

    analysed = analyse([(a, analyser_for("id")) for a in corpus.articles])
    words = csr_matrix((analysed.counts, analysed.indices, analysed.indptr))[:, :WORD_FEATURES]
    bm25 = _bm25(v, words.tocsr())
    v.report("BM25 + topics (BM25 scaled to the query's best)", (bm25 + topics) / 2 * week)
    v.report("BM25 + cosine + topics, a third each", (bm25 + v.cosine + topics) / 3 * week)

    vectors = v.topic_vectors(100)
    best = np.argsort(-np.where(v.window, mix, -np.inf), axis=1)[:, :20]
    for neighbours in (3, 5, 10):
        expanded = normalize(vectors[queries] + vectors[best[:, :neighbours]].mean(axis=1))
        fed = np.maximum(expanded @ vectors.T, 0)
        v.report(f"topic feedback: query + its best {neighbours}", (v.cosine + fed) / 2 * week)

    everything = np.maximum(vectors @ vectors.T, 0)
    np.fill_diagonal(everything, 0)
    for k in (5, 20):
        hub = -np.sort(-everything, axis=1)[:, :k].mean(axis=1)
        v.report(f"hubness correction (CSLS), k {k}", (v.cosine + topics) / 2 - hub[None, :] / 2)

    for weight in (0.25, 0.5):
        score = np.where(v.window, mix, -np.inf)
        for q in range(len(queries)):
            among = everything[np.ix_(best[q], best[q])]
            score[q, best[q]] += weight * among.sum(axis=1) / (len(best[q]) - 1)
        v.report(f"coherence with the best 20, weight {weight}", score)


def _neighbourhoods(v: Variants, topics: np.ndarray, week: np.ndarray) -> None:
    """The engine's re-rank of the best 20 cosines by cosine, topics and neighbourhood
    agreement (kabar.related.topics), with other shares, landmark counts, neighbourhood
    sizes and fitting seeds. P@3 also for the odd and even queries apart, to see that
    what was chosen on the whole holds on each half, and the mean word cosine of the
    items with their article: how close to its story a block stays."""
    best = np.argsort(-np.where(v.window, v.cosine, -np.inf), axis=1)[:, : engine_module.RERANK]
    reranked = np.zeros_like(v.window)
    np.put_along_axis(reranked, best, True, axis=1)
    reranked &= v.window
    plain = (v.cosine + topics) / 2 * week
    odd = np.arange(len(v.queries)) % 2 == 1

    def agreement(**constants: float) -> np.ndarray:
        with _constants(topics_module, constants):
            fitted = topics_module.Topics.fit(*v.rows, len(v.corpus.articles))
            assert fitted is not None
            around = fitted.neighbourhoods(fitted.vectors(*v.rows))
        result: np.ndarray = around[v.queries] @ around.T
        return result

    shares = (engine_module.COSINE_SHARE, engine_module.TOPIC_SHARE,
              engine_module.NEIGHBOURHOOD_SHARE)  # fmt: skip

    def show(label: str, agree: np.ndarray, mix: tuple[float, ...] = shares) -> None:
        mixed = (mix[0] * v.cosine + mix[1] * topics + mix[2] * agree) * week
        score = np.where(reranked, mixed + 1, plain)
        hits = v.report(label, score)
        top = np.argsort(-np.where(v.window, score, -np.inf), axis=1, kind="stable")[:, :BLOCK]
        words = np.take_along_axis(v.cosine, top, 1).mean()
        print(
            f"  {'':58s} odd queries {hits[odd].mean():.4f}, even {hits[~odd].mean():.4f}; "
            f"items' word cosine {words:.4f}"
        )

    show("cosine + topics half each, best 20 re-ranked", np.zeros_like(v.cosine), (0.5, 0.5, 0))
    default = agreement()
    show("+ neighbourhoods: 0.5 / 0.25 / 0.25 (500 landmarks, 10%)", default)
    for mix in ((0.5, 0.1, 0.4), (0.5, 0, 0.5), (0.25, 0.25, 0.5), (1 / 3, 1 / 3, 1 / 3)):
        show(f"  cosine / topics / neighbourhoods {' / '.join(f'{m:.2g}' for m in mix)}",
             default, mix)  # fmt: skip
    for landmarks in (250, 1000, len(v.corpus.articles)):
        show(f"  {landmarks} landmarks", agreement(LANDMARKS=landmarks))
    for size in (0.05, 0.2):
        show(f"  neighbourhood of {size:.0%} of landmarks", agreement(NEIGHBOURHOOD=size))
    for seed in (1, 2, 3):
        show(f"  landmarks and topics fitted with seed {seed}", agreement(_SEED=seed))


def _bm25(v: Variants, counts: csr_matrix, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 of each query's kept words against every article, scaled to the best."""
    frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    documents = counts.shape[0]
    idf = np.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))
    length = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    saturated = (
        coo.data * (k1 + 1) / (coo.data + k1 * (1 - b + b * length[coo.row] / length.mean()))
    )
    weighted = csr_matrix((saturated * idf[coo.col], (coo.row, coo.col)), shape=counts.shape)
    scores = ((counts[v.queries] > 0).astype(np.float32) @ weighted.T).toarray()
    result: np.ndarray = scores / np.maximum(scores.max(axis=1, keepdims=True), 1e-9)
    return result


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


QUICK_SENTENCES = 200


def sib200_report(folder: Path, *, quick: bool = False) -> None:
    for language, name in LANGUAGES.items():
        texts, labels = read_sib200(folder / name)
        if quick:
            texts, labels = texts[:QUICK_SENTENCES], labels[:QUICK_SENTENCES]
        if language == "id":
            print(f"SIB-200 same-category P@5 ({len(texts):,} sentences each; 95% interval)")
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


def near_copy_report(*, quick: bool = False) -> None:
    corpus = Corpus()
    articles: list[Article] = []
    story_of: dict[str, str] = {}
    span = timedelta(days=60)
    for _ in range(300 if quick else 3000):
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
        "--data", type=Path, default=DATA, help="folder holding indosum/ and sib200/"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small subsets, a few seconds (a smoke run)"
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="only the IndoSum ranking variants, by brute force (see the docstring)",
    )
    parser.add_argument(
        "--engine-variants",
        action="store_true",
        help="only the IndoSum changes measured through the engine, and lead-only queries",
    )
    args = parser.parse_args()
    indosum, sib200 = args.data / "indosum" / "articles.jsonl", args.data / "sib200"
    missing = [str(p) for p in (indosum, sib200) if not p.exists()]
    if missing and not args.quick:
        print(f"related_quality: no corpus at {', '.join(missing)} (see --data)", file=sys.stderr)
        sys.exit(2)
    for path in missing:
        print(f"related_quality: skipped, no corpus at {path}")
    if args.variants or args.engine_variants:
        if indosum.exists():
            report = variants_report if args.variants else engine_variants_report
            report(indosum, quick=args.quick)
        return
    if indosum.exists():
        indosum_report(indosum, quick=args.quick)
    if sib200.exists():
        sib200_report(sib200, quick=args.quick)
    near_copy_report(quick=args.quick)


if __name__ == "__main__":
    main()
