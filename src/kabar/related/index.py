"""The in-memory index: article rows in one flat sparse array sorted by publication time.

New rows go to a pending segment; every `MERGE_EVERY` adds it is merged into the main
segment (a sort by time, O(stored terms), all in numpy). A query scores only the blocks of
rows inside its candidate window, so its cost follows the window, not the archive. IDF is
a snapshot, refreshed when the article count has moved by 10% since the last one, so an
add never rewrites the other rows.

Doc numbers are given in order of adding, so the pending rows are always the newest
numbers: `[first_pending, len(docs))`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

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

MERGE_EVERY = 2048
BLOCK_ROWS = 8192  # rows per column-stored block of the main segment
IDF_DRIFT = 0.10
_BINCOUNT_FROM = 50_000  # terms in a batch from which one bincount beats np.add.at


@dataclass(frozen=True, slots=True)
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
        features, columns = np.unique(rows.indices, return_inverse=True)
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
        # The main segment, sorted by time; its weights were computed with `_main_idf`.
        self._main = empty_rows()
        self._main_idf: Floats = np.zeros(N_FEATURES, dtype=np.float32)
        self._times: I64 = np.zeros(0, dtype=np.int64)
        self._doc_numbers: I64 = np.zeros(0, dtype=np.int64)
        self._positions: I64 = np.zeros(0, dtype=np.int64)  # doc number -> main row
        self._blocks: list[Segment] = []
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

    def _replace(self, doc: Doc) -> bool:
        previous = self.by_id.get(doc.id)
        if previous is None:
            return True
        old = self.docs[previous]
        if old.content_hash == doc.content_hash and old.language == doc.language:
            return False
        self.dead.add(previous)
        self.documents -= 1
        return True

    def merge_if_due(self) -> None:
        if self.pending >= MERGE_EVERY:
            self.merge()

    def merge(self) -> None:
        """Fold pending rows into the main segment, drop replaced rows, re-sort by time."""
        if not self.pending and not self.dead:
            return
        dead = np.fromiter(self.dead, dtype=np.int64, count=len(self.dead))
        pending_numbers = np.arange(self.first_pending, len(self.docs), dtype=np.int64)
        pending_times = np.array(
            [micros(d.published) for d in self.docs[self.first_pending :]], dtype=np.int64
        )
        keep_main = np.flatnonzero(~np.isin(self._doc_numbers, dead))
        keep_pending = np.flatnonzero(~np.isin(pending_numbers, dead))
        parts = [self._main, self._pending()]
        if len(keep_main) < len(self._main):
            parts[0] = self._main.take(keep_main)
        if len(keep_pending) < len(parts[1]):
            parts[1] = parts[1].take(keep_pending)
        self._main, self._pending_parts, self._pending_rows = empty_rows(), [], None
        rows = Rows.concat(parts)
        del parts  # only `rows` holds the terms now
        times = np.concatenate((self._times[keep_main], pending_times[keep_pending]))
        numbers = np.concatenate((self._doc_numbers[keep_main], pending_numbers[keep_pending]))
        if len(times) > 1 and not (np.diff(times) >= 0).all():
            order = np.argsort(times, kind="stable")
            rows, times, numbers = rows.take(order), times[order], numbers[order]
        self._main, self._times, self._doc_numbers = rows, times, numbers
        self._positions = np.full(len(self.docs), -1, dtype=np.int64)
        self._positions[numbers] = np.arange(len(numbers))
        self.first_pending = len(self.docs)
        self._pending_parts, self._pending_rows, self._pending_segment = [], None, None
        self.dead.clear()
        self._main_idf = self._refresh_idf()
        self._blocks = []  # the old blocks go before the new ones are built
        weights = weigh(rows.indptr, rows.indices, rows.counts, self._main_idf)
        for start in range(0, len(times), BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, len(times))
            first, last = int(rows.indptr[start]), int(rows.indptr[stop])
            block = Rows(
                rows.indptr[start : stop + 1] - first,
                rows.indices[first:last],
                rows.counts[first:last],
            )
            self._blocks.append(
                Segment.of(block, weights[first:last], numbers[start:stop], times[start:stop])
            )

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
        for block in self._blocks:
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
        if number >= self.first_pending:
            rows, idf_values = self._pending(), self.current_idf()
            row = rows.row(number - self.first_pending)
        else:
            row, idf_values = self._main.row(int(self._positions[number])), self._main_idf
        indptr = np.array([0, len(row.indices)], dtype=np.int64)
        return row.indices, weigh(indptr, row.indices, row.counts, idf_values)

    def nbytes(self) -> int:
        rows = self._main
        arrays = (rows.indptr, rows.indices, rows.counts, self._times, self._doc_numbers)
        return (
            sum(a.nbytes for a in arrays) + self.df.nbytes + sum(b.nbytes() for b in self._blocks)
        )
