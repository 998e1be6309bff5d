"""RelatedEngine: the "Berita terkait" block of an article.

Scoring, for each candidate published in [before − window, before) in the article's
language:

    score = (0.8 · text + 0.15 · tag overlap + 0.05 · same section) · recency
    recency = 0.5 + 0.5 · 2^(−age / half_life)        (age at `before`)

The text similarity is the TF-IDF cosine over title (weighted up) and body; for the
`RERANK` best cosines of an article-length query it is half that cosine, a quarter topic
similarity and a quarter neighbourhood agreement (kabar.related.topics). Tag overlap is
shared tags over the smaller tag set.
Recency halves only the upper half of the score, so an excellent older match still beats
a weak fresh one.

Filtering: a candidate that is a near-copy of the article (cosine ≥ 0.95, or the same
canonical URL) is dropped; the kept list holds no two near-copies of each other (nor a copy
of a publisher-chosen item); items under `min_score` are dropped. A block still short is
filled from the article's section within the window (`fill: section`): first those that
share words or tags with it under the floor, best first (reason `closest`), then the
newest (score 0, reasons `section:…`, `newest`), never with older ones; fewer than
`min_items` items (default: `per_item`) then gives an empty block, so `fill: none` is
"3 or nothing". Publisher-chosen items (Article.related) come first, with score 1.0.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from kabar.config import Config, Related
from kabar.model import Article
from kabar.observe.metrics import RELATED_DOCUMENTS
from kabar.related import persist, snapshot
from kabar.related.analysis import analyser_for, analyser_key, article_language
from kabar.related.index import MERGE_EVERY, Doc, RelatedIndex, canonical_url
from kabar.related.terms import analyse, vocabulary
from kabar.related.topics import REFIT_DRIFT, SAMPLE, Topics
from kabar.related.vectors import WORD_FEATURES, Floats, Ints, Row, Rows
from kabar.store import Store

log = logging.getLogger(__name__)

_Latent = tuple[float, float]  # (topic similarity, neighbourhood agreement)
_Scored = tuple[float, float, int, _Latent | None]  # (score, cosine, doc number, latent)
TEXT_SHARE, TAG_SHARE, SECTION_SHARE = 0.8, 0.15, 0.05
RECENCY_FLOOR = 0.5
NEAR_COPY = 0.95
CANDIDATES = 100  # best cosines looked at per block, before scoring and filtering
RERANK = 20  # best cosines whose text score mixes in the topics (kabar.related.topics)
# Of their text score; the words keep half, so the block stays on the article's story.
COSINE_SHARE, TOPIC_SHARE, NEIGHBOURHOOD_SHARE = 0.5, 0.25, 0.25
TOPIC_WORDS = 48  # distinct words a query needs for topics to count (a sentence has ~15)
REASON_TERMS = 3
SLACK = timedelta(days=15)  # held beyond a window, so spans move once per SLACK, not per add
_CHUNK = 2000  # articles analysed at a time
SNAPSHOT_AFTER = 1000  # changes caught up on opening that make the snapshot be rewritten
_REFETCH_ONE_BY_ONE = 500  # fewer stale articles than this are read by id, else scanned


@dataclass(frozen=True)
class RelatedItem:
    title: str
    url: str
    summary: str
    published: datetime | None  # None for publisher-chosen links with no stored article
    article_id: str | None
    score: float  # 1.0 for publisher-chosen items
    reasons: tuple[str, ...]  # why, e.g. ("tag:korea-utara", "term:sanksi", "topic:0.62")
    chosen_by_publisher: bool


@dataclass(frozen=True, slots=True)
class _Query:
    article: Article
    language: str
    row: Row
    weights: Floats
    words: dict[int, str]  # word feature id -> the word, for reasons
    canonical_url: str


class RelatedEngine:
    """Related news over the store's articles; `open` it once per process.

    The index loads on first use: from its snapshot beside a SQLite database, caught up
    with the store, else from the stored terms (table `related_features`), analysing
    only articles whose terms are missing or stale. `add` analyses new and changed
    articles, stores their terms and, once loaded, indexes them. Not for concurrent
    writers; `related` may be called from several threads.
    """

    def __init__(
        self,
        *,
        site_language: str = "id",
        store: Store | None = None,
        defaults: Related | None = None,
    ) -> None:
        self.site_language = site_language
        self.store = store
        self.defaults = defaults or Related()
        self.index = RelatedIndex()
        self._loaded = store is None
        self._lock = threading.Lock()
        self._topics: Topics | None = None
        self._topics_at = -1  # index size when the topics were last fitted
        # What is in memory: everything without a store; with one, a span of the archive
        # (see `_cover`) and the window it keeps behind the newest article.
        self._span = persist.EVERYTHING
        self._reach = self.defaults.window
        self._newest: datetime | None = None

    @property
    def span(self) -> persist.Span:
        """The publication times of the articles held in memory."""
        return self._span

    @classmethod
    def open(cls, config: Config, store: Store) -> RelatedEngine:
        """The engine over `store`; the persisted index loads on first use."""
        return cls(site_language=config.site.language, store=store, defaults=config.related)

    @classmethod
    def build(
        cls,
        articles: Iterable[Article],
        *,
        site_language: str = "id",
        defaults: Related | None = None,
    ) -> RelatedEngine:
        """An in-memory engine over `articles`, nothing stored (benchmarks, previews)."""
        engine = cls(site_language=site_language, defaults=defaults)
        engine.add(articles)
        engine.index.merge()
        return engine

    # --- writing -------------------------------------------------------------------

    def add(self, articles: Iterable[Article]) -> int:
        """Analyse, store and index new or changed articles; returns how many were analysed.

        `articles` is read `_CHUNK` at a time, so a large build streams through."""
        analysed = 0
        for chunk in _batched(articles, _CHUNK):
            analysed += self._add_chunk(chunk)
        if analysed and self._loaded:
            with self._lock:
                self.index.merge_if_due()
            RELATED_DOCUMENTS.set(len(self.index))
        return analysed

    def _add_chunk(self, chunk: Sequence[Article]) -> int:
        given = [a for a in chunk if self._needs_terms(a)]
        languages = [article_language(a, self.site_language) for a in given]
        if self.store is not None and not self._loaded:
            stored = persist.current(self.store, [a.id for a in given])
            fresh = [
                i for i, (a, language) in enumerate(zip(given, languages, strict=True))
                if stored.get(a.id) != (a.content_hash, analyser_key(language))
            ]  # fmt: skip
            given, languages = [given[i] for i in fresh], [languages[i] for i in fresh]
        if not given:
            return 0
        rows = analyse([(a, analyser_for(lang)) for a, lang in zip(given, languages, strict=True)])
        if self.store is not None:
            keys = [analyser_key(lang) for lang in languages]
            persist.save(self.store, given, keys, rows.blobs())
        if self._loaded:
            self._index(given, languages, rows)
        return len(given)

    def _index(self, given: Sequence[Article], languages: Sequence[str], rows: Rows) -> None:
        """Index analysed articles, those of the span held in memory."""
        inside = [i for i, a in enumerate(given) if self._span.holds(a.published)]
        if len(inside) < len(given):
            given, languages = [given[i] for i in inside], [languages[i] for i in inside]
            rows = rows.take(np.array(inside, dtype=np.int64))
        if not given:
            return
        newest = max(a.published for a in given)
        docs = [self._doc(a, lang) for a, lang in zip(given, languages, strict=True)]
        with self._lock:
            self.index.add(docs, rows)
            if self._newest is None or newest > self._newest:
                self._newest = newest
                self._evict_if_due()

    def _needs_terms(self, article: Article) -> bool:
        number = self.index.by_id.get(article.id)
        return number is None or self.index.docs[number].content_hash != article.content_hash

    def _doc(self, a: Article, language: str) -> Doc:
        return Doc.of(
            a.id, a.url, a.title, a.summary, a.published, a.section, a.tags, language,
            a.content_hash,
        )  # fmt: skip

    # --- loading -------------------------------------------------------------------

    def load(self) -> None:
        """Load the index now (otherwise the first `related` call does): the articles of
        the present span, the window (and `SLACK`) before the newest stored article.

        A SQLite store keeps a snapshot of that index beside its file (see
        kabar.related.snapshot): it is read and caught up with the store's changes.
        Without a usable one, the index loads from the stored terms, and the snapshot is
        written for the next process."""
        with self._lock:
            if not self._loaded:
                self._move_to(self._present_span())
            RELATED_DOCUMENTS.set(len(self.index))

    def _present_span(self) -> persist.Span:
        """The articles from `reach` + `SLACK` before the newest stored one on, with no
        end: new articles join it."""
        assert self.store is not None
        newest = persist.newest(self.store)
        return persist.Span(None if newest is None else newest - self._reach - SLACK)

    def _cover(self, since: datetime, until: datetime) -> None:
        """Make sure the articles published in [since, until) are in memory.

        A store-backed engine holds one span of the archive: the present (the window
        before the newest article, and on), reaching further back for a query that
        overlaps it; or, for a query wholly before it, that query's window with `SLACK`
        either side. Moving the span loads what it gains from the stored terms and
        evicts what it leaves. The caller holds the lock, through its query too."""
        if self.store is None or (self._loaded and self._span.covers(since, until)):
            return
        present = self._present_span()
        if present.since is None or until > present.since:
            wanted = persist.Span(
                None if present.since is None else min(present.since, since - SLACK)
            )
        else:
            wanted = persist.Span(since - SLACK, until + SLACK)
        self._move_to(wanted)

    def _move_to(self, span: persist.Span) -> None:
        """Hold the articles of `span`: those already loaded stay, the rest is read."""
        assert self.store is not None
        self._newest = persist.newest(self.store)
        if not self._loaded:
            self._load(span)
        elif self._span.overlaps(span):
            self._span = span
            self._catch_up_changes()
            self._compact()
        else:  # nothing in common: start afresh rather than retire every row
            self._span, self.index = span, RelatedIndex()
            self._catch_up()
        self._loaded = True

    def _load(self, span: persist.Span) -> None:
        assert self.store is not None
        self._span = span
        path = snapshot.path_for(self.store) if span.until is None else None
        restored = snapshot.load(path, self.site_language) if path else None
        if restored is not None and restored[1].contains(span):
            self.index = restored[0]
            self._loaded = True
            if self._catch_up_changes() < SNAPSHOT_AFTER:
                self._compact()
                return
        else:
            self.index = RelatedIndex()
            self._catch_up()
        if path is not None and len(self.index):
            try:
                snapshot.save(path, self.index, self.site_language, span)
            except OSError as exc:
                log.warning("related: cannot write the index snapshot %s: %s", path, exc)

    def refresh(self) -> None:
        """Pick up articles another process stored, changed or removed since loading."""
        if not self._loaded:
            self.load()
            return
        with self._lock:
            self._catch_up_changes()

    def _catch_up_changes(self) -> int:
        """Index what changed in the store within the span, and drop what left it;
        returns how many articles changed."""
        assert self.store is not None
        docs, by_id = self.index.docs, self.index.by_id
        stored = dict(persist.hashes(self.store, self._span))
        changed = [
            i for i, h in stored.items() if i not in by_id or docs[by_id[i]].content_hash != h
        ]
        removed = [i for i in by_id if i not in stored]
        self.index.remove(removed)
        if changed:
            self._catch_up(changed)
        return len(changed) + len(removed)

    def _catch_up(self, ids: Sequence[str] | None = None) -> None:
        assert self.store is not None
        stale: list[str] = []
        loaded = 0
        for chunk in persist.read(self.store, self.site_language, ids=ids, span=self._span):
            loaded += self.index.add(chunk.docs, Rows.from_blobs(chunk.blobs))
            stale += chunk.stale
        self._loaded = True
        if stale:
            log.info("related: analysing %d articles whose stored terms are missing", len(stale))
            self._lock.release()  # add() takes the lock itself
            try:
                self.add(self._fetch(stale))
            finally:
                self._lock.acquire()
        if ids is None:
            self.index.merge()
        else:  # a few changes: no full merge
            self.index.merge_if_due()
        log.debug(
            "related: %d stored, %d analysed, %d indexed", loaded, len(stale), len(self.index)
        )

    def _evict_if_due(self) -> None:
        """In the present span, drop the articles that left it once they make up
        `SLACK` of time: memory follows the window, not the archive."""
        newest, since = self._newest, self._span.since
        if self.store is None or self._span.until is not None or newest is None:
            return
        if since is not None and since >= newest - self._reach - 2 * SLACK:
            return
        self._span = persist.Span(newest - self._reach - SLACK)
        gone = [
            d.id
            for n, d in enumerate(self.index.docs)
            if n not in self.index.dead and not self._span.holds(d.published)
        ]
        self.index.remove(gone)
        self._compact(always=True)

    def _compact(self, *, always: bool = False) -> None:
        """Renumber the index without the rows and docs it dropped (a merge keeps the
        dropped docs' fields; this frees them), when they are many or `always`."""
        if always or len(self.index.docs) - len(self.index) > MERGE_EVERY:
            self.index = RelatedIndex.restore(self.index.state())

    def _fetch(self, ids: Sequence[str]) -> Iterable[Article]:
        assert self.store is not None
        if len(ids) < _REFETCH_ONE_BY_ONE:
            return [a for a in map(self.store.get, ids) if a is not None]
        wanted = set(ids)
        span = self._span
        within = self.store.articles(since=span.since, before=span.until, newest_first=False)
        return (a for a in within if a.id in wanted)

    # --- reading -------------------------------------------------------------------

    def related(
        self,
        article: Article,
        *,
        before: datetime | None = None,
        settings: Related | None = None,
        exclude: Collection[str] = (),
    ) -> list[RelatedItem]:
        """The related block of `article`: publisher-chosen items, then the best others.

        Only articles published strictly before `before` (default: the article's own
        time) are candidates. Publisher-chosen items are bounded by `before` only when it
        is given: publishers link newer follow-ups from older stories, but an issue can't
        link to an article that did not exist at its issue time. Articles at the URLs in
        `exclude` are never shown (a digest excludes its own items, so no story appears
        twice in one email).
        """
        settings = settings or self.defaults
        min_items = settings.per_item if settings.min_items is None else settings.min_items
        if settings.per_item == 0:
            return []
        moment = before or article.published
        with self._lock:
            if self.store is not None:
                self._reach = max(self._reach, settings.window)
                self._cover(moment - settings.window, moment)
            query = self._query(article)  # weighed with the IDF of the span held
            excluded = {canonical_url(url) for url in exclude} | {query.canonical_url}
            chosen, chosen_numbers = self._chosen(article, before, excluded)
            chosen = chosen[: settings.per_item]
            taken = _Taken(
                urls=excluded | {canonical_url(i.url) for i in chosen},
                rows=[self.index.row_of(n) for n in chosen_numbers],
            )
            found, under_floor = self._found(
                query, moment, settings, taken, settings.per_item - len(chosen)
            )
            items = chosen + found
            if settings.fill == "section":
                items += self._closest_in_section(
                    query, under_floor, taken, settings.per_item - len(items)
                )
                items += self._newest_in_section(
                    query, moment, settings, taken, settings.per_item - len(items)
                )
        return items if len(items) >= min_items else []

    def _query(self, article: Article) -> _Query:
        language = article_language(article, self.site_language)
        analyser = analyser_for(language)
        row, weights = self.index.query_row(analyse([(article, analyser)]).row(0))
        return _Query(
            article=article,
            language=language,
            row=row,
            weights=weights,
            words=vocabulary(article, analyser),
            canonical_url=canonical_url(article.url),
        )

    def _chosen(
        self, article: Article, before: datetime | None, excluded: set[str]
    ) -> tuple[list[RelatedItem], list[int]]:
        items: list[RelatedItem] = []
        numbers: list[int] = []
        seen = set(excluded)
        elsewhere = self._outside_span(article)
        for link in article.related:
            url = canonical_url(link.url)
            if not url or url in seen:
                continue
            seen.add(url)
            number = self.index.by_url.get(url)
            doc = self.index.docs[number] if number is not None else elsewhere.get(url)
            if doc is not None and before is not None and doc.published >= before:
                continue
            if number is not None:
                numbers.append(number)
            items.append(
                RelatedItem(
                    title=link.title or (doc.title if doc else ""),
                    url=link.url,
                    summary=link.summary or (doc.summary if doc else ""),
                    published=doc.published if doc else None,
                    article_id=doc.id if doc else None,
                    score=1.0,
                    reasons=("publisher",),
                    chosen_by_publisher=True,
                )
            )
        return items, numbers

    def _outside_span(self, article: Article) -> dict[str, Doc]:
        """Stored articles the publisher chose for `article` that the span held leaves
        out, by canonical URL."""
        if self.store is None or self._span == persist.EVERYTHING:
            return {}
        missing = [
            link.url for link in article.related
            if canonical_url(link.url) not in self.index.by_url
        ]  # fmt: skip
        return persist.at_urls(self.store, self.site_language, missing) if missing else {}

    def _found(
        self, query: _Query, before: datetime, settings: Related, taken: _Taken, wanted: int
    ) -> tuple[list[RelatedItem], list[_Scored]]:
        """The best candidates over `min_score`, and those under it, best first."""
        if wanted <= 0:
            return [], []
        items: list[RelatedItem] = []
        candidates = self._candidates(query, before, settings)
        for position, (score, cosine, number, latent) in enumerate(candidates):
            if len(items) == wanted:
                return items, []
            if score < settings.min_score:  # candidates are sorted by score
                return items, candidates[position:]
            doc = self.index.docs[number]
            if cosine >= NEAR_COPY or doc.canonical_url in taken.urls:
                continue
            indices, weights = self.index.row_of(number)
            if taken.admits(doc, indices, weights):
                taken.take(doc, indices, weights)
                reasons = self._reasons(query, doc, indices, weights, latent)
                items.append(self._item(doc, score, reasons))
        return items, []

    def _closest_in_section(
        self, query: _Query, under_floor: list[_Scored], taken: _Taken, wanted: int
    ) -> list[RelatedItem]:
        """For a short block, the articles of the query's section that share words or tags
        with it, though under `min_score`, best first: closer than merely the newest of
        the section (a summary-only article scores low against everything)."""
        section = query.article.section.casefold()
        if wanted <= 0 or not section:
            return []
        items: list[RelatedItem] = []
        for score, cosine, number, latent in under_floor:
            doc = self.index.docs[number]
            if doc.section != section or cosine >= NEAR_COPY or doc.canonical_url in taken.urls:
                continue
            indices, weights = self.index.row_of(number)
            reasons = self._reasons(query, doc, indices, weights, latent)
            if not any(r.startswith(("term:", "tag:")) for r in reasons):
                continue  # only spelling in common: no closer than the newest
            if taken.admits(doc, indices, weights):
                taken.take(doc, indices, weights)
                items.append(self._item(doc, score, (*reasons, "closest")))
                if len(items) == wanted:
                    break
        return items

    def _newest_in_section(
        self, query: _Query, before: datetime, settings: Related, taken: _Taken, wanted: int
    ) -> list[RelatedItem]:
        """The newest articles of the query's section within the window (not near-copies
        of it or of the items kept), for a block the engine found too few items for."""
        section = query.article.section.casefold()
        if wanted <= 0 or not section:
            return []
        low, high = _micros(before - settings.window), _micros(before)
        numbers, times = [], []
        for segment in self.index.segments(before - settings.window, before):
            inside = (segment.times >= low) & (segment.times < high)
            numbers.append(segment.docs[inside])
            times.append(segment.times[inside])
        if not numbers:
            return []
        newest_first = np.argsort(-np.concatenate(times), kind="stable")
        items: list[RelatedItem] = []
        for number in np.concatenate(numbers)[newest_first].tolist():
            doc = self.index.docs[number]
            if doc.section != section or not self._candidate(query, number, doc):
                continue
            indices, weights = self.index.row_of(number)
            if _cosine(query.row.indices, query.weights, indices, weights) >= NEAR_COPY:
                continue
            if not taken.admits(doc, indices, weights):
                continue
            taken.take(doc, indices, weights)
            reasons = (f"section:{section}", "newest")
            items.append(self._item(doc, 0.0, reasons))
            if len(items) == wanted:
                break
        return items

    def _candidate(self, query: _Query, number: int, doc: Doc) -> bool:
        """Whether an indexed doc may relate to the query at all."""
        return (
            number not in self.index.dead
            and doc.language == query.language
            and doc.id != query.article.id
            and doc.canonical_url != query.canonical_url
        )

    def _candidates(self, query: _Query, before: datetime, settings: Related) -> list[_Scored]:
        """(score, cosine, doc number, latent similarities if re-ranked) of the best
        candidates, best first."""
        low, high = before - settings.window, before
        cosines: list[np.ndarray] = []
        numbers: list[np.ndarray] = []
        for segment in self.index.segments(low, high):
            sims = segment.cosines(query.row.indices, query.weights)
            inside = (segment.times >= _micros(low)) & (segment.times < _micros(high))
            picked = np.flatnonzero(inside & (sims > 0))
            cosines.append(sims[picked])
            numbers.append(segment.docs[picked])
        if not cosines:
            return []
        all_cosines, all_numbers = np.concatenate(cosines), np.concatenate(numbers)
        if len(all_cosines) > CANDIDATES:
            top = np.argpartition(-all_cosines, CANDIDATES)[:CANDIDATES]
            all_cosines, all_numbers = all_cosines[top], all_numbers[top]
        article = query.article
        tags = frozenset(t.casefold() for t in article.tags)
        section = article.section.casefold()
        half_life = settings.half_life.total_seconds()
        latent = self._latent_similarities(query, all_cosines, all_numbers)
        scored = []
        for cosine, number in zip(all_cosines.tolist(), all_numbers.tolist(), strict=True):
            doc = self.index.docs[number]
            if not self._candidate(query, number, doc):
                continue
            text = min(cosine, 1.0)
            if number in latent:
                topic, neighbourhood = latent[number]
                text = COSINE_SHARE * text + TOPIC_SHARE * topic
                text += NEIGHBOURHOOD_SHARE * neighbourhood
            relevance = TEXT_SHARE * text + TAG_SHARE * _overlap(tags, doc.tags)
            if section and doc.section == section:
                relevance += SECTION_SHARE
            age = max((before - doc.published).total_seconds(), 0.0)
            recency = RECENCY_FLOOR + (1 - RECENCY_FLOOR) * 0.5 ** (age / half_life)
            scored.append((relevance * recency, cosine, number, latent.get(number)))
        scored.sort(key=lambda entry: (-entry[0], self.index.docs[entry[2]].id))
        return scored

    def _latent_similarities(
        self, query: _Query, cosines: np.ndarray, numbers: np.ndarray
    ) -> dict[int, _Latent]:
        """Topic similarity and neighbourhood agreement of the query with its `RERANK` best
        cosines; none for a short text, whose few words give no reliable topic (SIB-200's
        sentences lose with it)."""
        if int((query.row.indices < WORD_FEATURES).sum()) < TOPIC_WORDS:
            return {}
        topics = self._current_topics()
        if topics is None:
            return {}
        indptr = np.array([0, len(query.row.indices)], dtype=np.int64)
        wanted = topics.vectors(indptr, query.row.indices, query.weights)[0]
        if not wanted.any():
            return {}
        best = numbers[np.argsort(-cosines, kind="stable")[:RERANK]].tolist()
        vectors = topics.vectors(*self.index.weighted_rows(best))
        similarities = np.maximum(vectors @ wanted, 0).tolist()
        agreements = topics.neighbourhoods(vectors) @ topics.neighbourhoods(wanted[None])[0]
        return dict(zip(best, zip(similarities, agreements.tolist(), strict=True), strict=True))

    def _current_topics(self) -> Topics | None:
        """The topics, fitted again on the newest `SAMPLE` rows once the index has moved
        by `REFIT_DRIFT` since the last fit."""
        size = len(self.index)
        if self._topics_at < 0 or abs(size - self._topics_at) >= REFIT_DRIFT * max(
            self._topics_at, 1
        ):
            live = (n for n in range(len(self.index.docs) - 1, -1, -1) if n not in self.index.dead)
            newest = list(itertools.islice(live, SAMPLE))
            self._topics = Topics.fit(*self.index.weighted_rows(newest), size)
            self._topics_at = size
        return self._topics

    @staticmethod
    def _item(doc: Doc, score: float, reasons: tuple[str, ...]) -> RelatedItem:
        return RelatedItem(
            title=doc.title,
            url=doc.url,
            summary=doc.summary,
            published=doc.published,
            article_id=doc.id,
            score=round(score, 4),
            reasons=reasons,
            chosen_by_publisher=False,
        )

    def _reasons(
        self, query: _Query, doc: Doc, indices: Ints, weights: Floats, latent: _Latent | None
    ) -> tuple[str, ...]:
        """Shared tags, the same section, the terms that matched most and, for a
        re-ranked item, its topic similarity and neighbourhood agreement."""
        tags = sorted(frozenset(t.casefold() for t in query.article.tags) & doc.tags)
        reasons = [f"tag:{'-'.join(tag.split())}" for tag in tags]
        if doc.section and doc.section == query.article.section.casefold():
            reasons.append(f"section:{doc.section}")
        shared, in_query, in_doc = np.intersect1d(
            query.row.indices, indices, assume_unique=True, return_indices=True
        )
        is_word = shared < WORD_FEATURES
        contribution = (query.weights[in_query] * weights[in_doc])[is_word]
        best = shared[is_word][np.argsort(-contribution, kind="stable")[:REASON_TERMS]]
        reasons += [f"term:{query.words[int(f)]}" for f in best if int(f) in query.words]
        if latent is not None:
            reasons += [f"topic:{latent[0]:.2f}", f"neighbourhood:{latent[1]:.2f}"]
        return tuple(reasons)


@dataclass
class _Taken:
    """What a block holds so far: canonical URLs not to show again, and the weighted rows
    of its items, which no further item may be a near-copy of."""

    urls: set[str]
    rows: list[tuple[Ints, Floats]]

    def admits(self, doc: Doc, indices: Ints, weights: Floats) -> bool:
        if doc.canonical_url in self.urls:
            return False
        return all(_cosine(indices, weights, i, w) < NEAR_COPY for i, w in self.rows)

    def take(self, doc: Doc, indices: Ints, weights: Floats) -> None:
        self.urls.add(doc.canonical_url)
        self.rows.append((indices, weights))


def _batched(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    chunk: list[Article] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _cosine(i1: Ints, w1: Floats, i2: Ints, w2: Floats) -> float:
    _, p1, p2 = np.intersect1d(i1, i2, assume_unique=True, return_indices=True)
    return float(np.dot(w1[p1].astype(np.float64), w2[p2]))


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
