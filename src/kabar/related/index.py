"""The in-memory index: runs of article rows, each in flat sparse arrays sorted by
publication time and cut into column-stored blocks.

New rows go to a pending segment. Every `MERGE_EVERY` adds it is frozen into a small run
of its own; once there are more than `RUNS` runs, all are merged into one (a sort by
time, O(stored terms), all in numpy). So an add costs a fraction of a merge, and a query
scores only the blocks inside its candidate window: its cost follows the window, not the
archive. IDF is a snapshot, refreshed when the article count has moved by 10% since the
last one, so an add never rewrites the other rows.

Doc numbers are given in order of adding, so each run holds a range of numbers, and the
pending rows are the newest: `[first_pending, len(docs))`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_matrix, csr_matrix

from kabar.related.vectors import (
    I64,
    N_FEATURES,
    Floats,
    Ints,
    Row,
    Rows,
    empty_rows,
    idf,
    prune,
    weigh,
)

SUMMARY_CHARS = 500  # what a related item shows
_TRACKING = ("utm_", "fbclid", "gclid", "mc_", "ref", "src")
_PLAIN_URL = re.compile(r"(?:https?:)?//([^/?#@\s]+)(/[^?#\s]*)?", re.IGNORECASE)
MERGE_EVERY = 2048  # pending rows frozen into a run
RUNS = 4  # more runs than this are merged into one
COMPACT_EVERY = MERGE_EVERY * RUNS  # adds between two full merges
BLOCK_ROWS = 8192  # rows per column-stored block of the main segment
IDF_DRIFT = 0.10
_BINCOUNT_FROM = 50_000  # terms in a batch from which one bincount beats np.add.at
_UNIQUE_UNDER = 200_000  # terms in a block under which sorting beats a feature table


@dataclass(slots=True)  # not frozen: frozen init is slow, and a load makes 100,000s
class Doc:
    """What a related item shows, and what filtering needs, for one indexed article."""

    id: str
    url: str
    canonical_url: str
    title: str
    summary: str
    published: datetime
    section: str
    tags: frozenset[str]
    language: str
    content_hash: str

    @classmethod
    def of(
        cls, id: str, url: str, title: str, summary: str, published: datetime, section: str,
        tags: Iterable[str], language: str, content_hash: str,
    ) -> Doc:  # fmt: skip
        return cls(
            id, url, canonical_url(url), title, summary[:SUMMARY_CHARS], published,
            section.casefold(), frozenset(map(str.casefold, tags)), language, content_hash,
        )  # fmt: skip


def canonical_url(url: str) -> str:
    """The URL with what doesn't change the page removed: scheme, `www.`, tracking
    parameters, fragment, a trailing slash or `/amp`."""
    if not url:
        return ""
    url = url.strip()
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:  # most article URLs: no query, nothing to parse
        return f"//{_host(plain[1])}{_path(plain[2] or '')}"
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if not k.lower().startswith(_TRACKING)]
    return urlunsplit(("", _host(parts.netloc), _path(parts.path), urlencode(sorted(query)), ""))


def _host(netloc: str) -> str:
    return netloc.lower().removeprefix("www.").removeprefix("m.")


def _path(path: str) -> str:
    return path.rstrip("/").removesuffix("/amp") or "/"


@dataclass(frozen=True, slots=True)
class Segment:
    """A block of rows, stored by column so a query reads only its own terms' postings.

    Columns are the block's own features (sorted), not the whole feature space, so a
    block's column pointers stay small."""

    features: Ints
    matrix: csc_matrix  # unit-length TF-IDF rows
    docs: I64
    times: I64

    @classmethod
    def of(cls, rows: Rows, weights: Floats, docs: I64, times: I64) -> Segment:
        features: NDArray[Any]
        columns: NDArray[Any]
        if len(rows.indices) < _UNIQUE_UNDER:
            features, columns = np.unique(rows.indices, return_inverse=True)
        else:  # a table over the feature space beats sorting
            present = np.zeros(N_FEATURES, dtype=bool)
            present[rows.indices] = True
            features = np.flatnonzero(present)
            columns = (np.cumsum(present, dtype=np.int32) - 1)[rows.indices]
        matrix = csr_matrix(
            (weights, columns.ravel().astype(np.int32), rows.indptr),
            shape=(len(rows), len(features)),
        ).tocsc()
        return cls(features.astype(np.int32), matrix, docs, times)

    def cosines(self, features: Ints, weights: Floats) -> NDArray[np.float32]:
        if not len(self.features):
            return np.zeros(len(self.docs), dtype=np.float32)
        columns = np.minimum(np.searchsorted(self.features, features), len(self.features) - 1)
        present = self.features[columns] == features
        result: NDArray[np.float32] = self.matrix[:, columns[present]] @ weights[present]
        return result

    def nbytes(self) -> int:
        m = self.matrix
        return int(self.features.nbytes + m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Run:
    """Rows sorted by time (pruned counts), in blocks weighed with the IDF `idf`."""

    rows: Rows
    times: I64
    numbers: I64  # doc numbers, all >= `first`
    first: int
    positions: I64  # doc number - first -> row (-1: not in this run)
    idf: Floats
    blocks: list[Segment]

    @classmethod
    def of(cls, rows: Rows, times: I64, numbers: I64, first: int, idf_values: Floats) -> Run:
        if len(times) > 1 and not (np.diff(times) >= 0).all():
            order = np.argsort(times, kind="stable")
            rows, times, numbers = rows.take(order), times[order], numbers[order]
        positions = np.full(int(numbers.max(initial=first - 1)) - first + 1, -1, dtype=np.int64)
        positions[numbers - first] = np.arange(len(numbers))
        blocks = []
        for start in range(0, len(times), BLOCK_ROWS):  # weighed a block at a time: less memory
            stop = min(start + BLOCK_ROWS, len(times))
            block = rows.slice(start, stop)
            weights = weigh(block.indptr, block.indices, block.counts, idf_values)
            blocks.append(Segment.of(block, weights, numbers[start:stop], times[start:stop]))
        return cls(rows, times, numbers, first, positions, idf_values, blocks)

    def row(self, number: int) -> Row:
        offset = number - self.first
        position = int(self.positions[offset]) if offset < len(self.positions) else -1
        if position < 0:  # replaced, and dropped by a merge
            return Row(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        return self.rows.row(position)

    def nbytes(self) -> int:
        arrays = (self.rows.indptr, self.rows.indices, self.rows.counts, self.times)
        return sum(a.nbytes for a in arrays) + sum(b.nbytes() for b in self.blocks)


@dataclass(frozen=True, slots=True)
class IndexState:
    """A merged index: docs in row order, their rows, times and blocks (`BLOCK_ROWS` rows
    each, weighed with `idf`), and the document frequencies."""

    docs: list[Doc]
    rows: Rows
    times: I64
    df: NDArray[np.int32]
    documents: int
    idf: Floats
    idf_documents: int
    blocks: list[tuple[Ints, csc_matrix]]


class RelatedIndex:
    def __init__(self) -> None:
        self.docs: list[Doc] = []
        self.by_id: dict[str, int] = {}
        self.by_url: dict[str, int] = {}
        self.dead: set[int] = set()  # numbers of replaced docs, until the next merge
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self.documents = 0
        self._idf: Floats | None = None
        self._idf_documents = 0
        self._runs: list[Run] = []  # by doc numbers: each run's numbers follow the last's
        # Pending rows: docs numbered first_pending and up.
        self.first_pending = 0
        self._pending_parts: list[Rows] = []
        self._pending_rows: Rows | None = None
        self._pending_segment: Segment | None = None

    def __len__(self) -> int:
        return self.documents

    @property
    def pending(self) -> int:
        return len(self.docs) - self.first_pending

    # --- writing -------------------------------------------------------------------

    def add(self, docs: Sequence[Doc], rows: Rows) -> int:
        """Index docs (with their unpruned rows), replacing older versions of them;
        returns how many changed.

        Document frequencies count every term of the batch first, so the terms each row
        keeps (see `prune`) are chosen with the batch's own words known."""
        fresh = [i for i, doc in enumerate(docs) if self._replace(doc)]
        if not fresh:
            return 0
        if len(fresh) < len(docs):
            rows = rows.take(np.array(fresh, dtype=np.int64))
        if len(rows.indices) >= _BINCOUNT_FROM:
            self.df += np.bincount(rows.indices, minlength=N_FEATURES).astype(np.int32)
        else:
            np.add.at(self.df, rows.indices, 1)  # a row's feature ids are unique
        self.documents += len(fresh)
        pruned = prune(rows, self._refresh_idf())
        for i in fresh:
            doc = docs[i]
            number = len(self.docs)
            self.docs.append(doc)
            self.by_id[doc.id] = number
            if doc.canonical_url:
                self.by_url[doc.canonical_url] = number
        self._pending_parts.append(pruned)
        self._pending_rows = self._pending_segment = None
        return len(fresh)

    def remove(self, ids: Iterable[str]) -> None:
        """Drop articles that left the store."""
        for id in ids:
            number = self.by_id.pop(id, None)
            if number is not None:
                self._retire(number)

    def _replace(self, doc: Doc) -> bool:
        previous = self.by_id.get(doc.id)
        if previous is None:
            return True
        old = self.docs[previous]
        if old.content_hash == doc.content_hash and old.language == doc.language:
            return False
        self._retire(previous)
        return True

    def _retire(self, number: int) -> None:
        """Take a replaced or removed doc out; its document frequencies go with its kept
        terms (the pruned tail stays counted: no index holds it)."""
        np.subtract.at(self.df, self._row(number).indices, 1)
        self.dead.add(number)
        url = self.docs[number].canonical_url
        if self.by_url.get(url) == number:
            del self.by_url[url]
        self.documents -= 1

    def merge_if_due(self) -> None:
        """Freeze the pending rows into a run once there are `MERGE_EVERY`; merge the
        runs once there are more than `RUNS`."""
        if self.pending >= MERGE_EVERY:
            if len(self._runs) >= RUNS:
                self.merge()
            else:
                rows, times, numbers = self._take_pending()
                self._runs.append(Run.of(rows, times, numbers, numbers[0], self._refresh_idf()))

    def merge(self) -> None:
        """Merge every run and the pending rows into one run, without replaced rows."""
        if not self.pending and not self.dead and len(self._runs) <= 1:
            return
        dead = np.fromiter(self.dead, dtype=np.int64, count=len(self.dead))
        parts = [(run.rows, run.times, run.numbers) for run in self._runs]
        parts.append(self._take_pending())
        self._runs = []
        for i, (rows, times, numbers) in enumerate(parts):
            keep = np.flatnonzero(~np.isin(numbers, dead))
            if len(keep) < len(numbers):
                parts[i] = (rows.take(keep), times[keep], numbers[keep])
        rows = Rows.concat([part[0] for part in parts])
        times = np.concatenate([part[1] for part in parts])
        numbers = np.concatenate([part[2] for part in parts])
        del parts  # only `rows` holds the terms now
        self.dead.clear()
        if len(numbers):
            self._runs = [Run.of(rows, times, numbers, 0, self._refresh_idf())]

    def state(self) -> IndexState:
        """Everything the index holds, merged, for a snapshot (docs in row order)."""
        self.merge()
        idf_values = self.current_idf()
        if not self._runs:
            return IndexState(
                [], empty_rows(), np.zeros(0, np.int64), self.df, 0, idf_values, 0, []
            )
        run = self._runs[0]
        docs = [self.docs[n] for n in run.numbers.tolist()]
        blocks = [(block.features, block.matrix) for block in run.blocks]
        return IndexState(
            docs, run.rows, run.times, self.df, self.documents, run.idf, self._idf_documents, blocks
        )

    @classmethod
    def restore(cls, state: IndexState) -> RelatedIndex:
        """An index holding a `state()` again (doc numbers follow row order)."""
        index = cls()
        docs = index.docs = state.docs
        index.by_id = {doc.id: number for number, doc in enumerate(docs)}
        index.by_url = {doc.canonical_url: n for n, doc in enumerate(docs) if doc.canonical_url}
        index.df, index.documents = state.df, state.documents
        index._idf, index._idf_documents = state.idf, state.idf_documents
        index.first_pending = len(docs)
        if docs:
            numbers = np.arange(len(docs), dtype=np.int64)
            blocks = [
                Segment(
                    features,
                    matrix,
                    numbers[start : start + BLOCK_ROWS],
                    state.times[start : start + BLOCK_ROWS],
                )
                for start, (features, matrix) in zip(
                    range(0, len(docs), BLOCK_ROWS), state.blocks, strict=True
                )
            ]
            index._runs = [Run(state.rows, state.times, numbers, 0, numbers, state.idf, blocks)]
        return index

    def _take_pending(self) -> tuple[Rows, I64, I64]:
        rows = self._pending()
        numbers = np.arange(self.first_pending, len(self.docs), dtype=np.int64)
        times = np.array(
            [micros(d.published) for d in self.docs[self.first_pending :]], dtype=np.int64
        )
        self.first_pending = len(self.docs)
        self._pending_parts, self._pending_rows, self._pending_segment = [], None, None
        return rows, times, numbers

    def _refresh_idf(self) -> Floats:
        drift = abs(self.documents - self._idf_documents) / max(self._idf_documents, 1)
        if self._idf is None or drift >= IDF_DRIFT:
            self._idf = idf(self.df, self.documents)
            self._idf_documents = self.documents
        return self._idf

    def _pending(self) -> Rows:
        if self._pending_rows is None:
            self._pending_rows = Rows.concat(self._pending_parts)
            self._pending_parts = [self._pending_rows]
        return self._pending_rows

    # --- reading -------------------------------------------------------------------

    def current_idf(self) -> Floats:
        return self._idf if self._idf is not None else self._refresh_idf()

    def query_row(self, row: Row) -> tuple[Row, Floats]:
        """A query's row, pruned like stored rows, and its weights."""
        idf_values = self.current_idf()
        indptr = np.array([0, len(row.indices)], dtype=np.int64)
        pruned = prune(Rows(indptr, row.indices, row.counts), idf_values)
        return pruned.row(0), weigh(pruned.indptr, pruned.indices, pruned.counts, idf_values)

    def segments(self, since: datetime, before: datetime) -> Iterator[Segment]:
        """Blocks holding rows published in [since, before); callers mask by time."""
        low, high = micros(since), micros(before)
        for run in self._runs:
            for block in run.blocks:
                if len(block.times) and block.times[0] < high and block.times[-1] >= low:
                    yield block
        if self.pending:
            pending = self._pending_block()
            inside = (pending.times >= low) & (pending.times < high)
            if inside.any():
                yield pending
        # Replaced rows are filtered by the caller through `dead`.

    def _pending_block(self) -> Segment:
        if self._pending_segment is None:
            rows = self._pending()
            weights = weigh(rows.indptr, rows.indices, rows.counts, self.current_idf())
            numbers = np.arange(self.first_pending, len(self.docs), dtype=np.int64)
            times = np.array(
                [micros(d.published) for d in self.docs[self.first_pending :]], dtype=np.int64
            )
            self._pending_segment = Segment.of(rows, weights, numbers, times)
        return self._pending_segment

    def row_of(self, number: int) -> tuple[Ints, Floats]:
        """The weighted row (feature ids, weights) of a doc number, weighted as it is in
        its segment."""
        row = self._row(number)
        if number >= self.first_pending:
            idf_values = self.current_idf()
        else:
            idf_values = next(r for r in reversed(self._runs) if number >= r.first).idf
        indptr = np.array([0, len(row.indices)], dtype=np.int64)
        return row.indices, weigh(indptr, row.indices, row.counts, idf_values)

    def weighted_rows(self, numbers: Sequence[int]) -> tuple[I64, Ints, Floats]:
        """The rows of doc numbers (indptr, feature ids, weights), weighed in one pass with
        the current IDF: cheaper than `row_of` each, close to it where a run's IDF is older."""
        rows = [self._row(number) for number in numbers]
        indptr = np.concatenate(([0], np.cumsum([len(r.indices) for r in rows]))).astype(np.int64)
        if not rows:
            return indptr, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        indices = np.concatenate([r.indices for r in rows])
        counts = np.concatenate([r.counts for r in rows])
        return indptr, indices, weigh(indptr, indices, counts, self.current_idf())

    def _row(self, number: int) -> Row:
        if number >= self.first_pending:
            return self._pending().row(number - self.first_pending)
        return next(r for r in reversed(self._runs) if number >= r.first).row(number)

    def nbytes(self) -> int:
        return self.df.nbytes + sum(run.nbytes() for run in self._runs)
