"""The in-memory index: one sparse matrix of article rows sorted by publication time.

Rows are appended to a small pending segment; every `MERGE_EVERY` adds it is merged into
the main matrix (a sort by time, O(stored terms)). A query scores only the rows inside
its candidate window, found by binary search on the sorted times, so its cost follows the
window, not the archive. IDF is a snapshot, refreshed when the article count has moved by
10% since the last one, so an add never rewrites the other rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_matrix, csr_matrix

from kabar.related.vectors import N_FEATURES, Floats, Ints, Row, idf, prune, weigh

MERGE_EVERY = 2048
BLOCK_ROWS = 8192  # rows per column-stored block of the main segment
IDF_DRIFT = 0.10

I64 = NDArray[np.int64]


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
    """A block of rows, stored by column so a query reads only its own terms' postings."""

    matrix: csc_matrix  # unit-length TF-IDF rows
    docs: I64
    times: I64

    def cosines(self, features: Ints, weights: Floats) -> NDArray[np.float32]:
        result: NDArray[np.float32] = self.matrix[:, features] @ weights
        return result


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class RelatedIndex:
    def __init__(self) -> None:
        self.docs: list[Doc] = []
        self.by_id: dict[str, int] = {}
        self.by_url: dict[str, int] = {}
        self.rows: dict[int, Row] = {}  # pending rows, by doc number
        self.dead: set[int] = set()
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self.documents = 0
        self._idf: Floats | None = None
        self._idf_documents = 0
        # The main segment, sorted by time.
        self._indptr = np.zeros(1, dtype=np.int32)
        self._indices: Ints = np.zeros(0, dtype=np.int32)
        self._counts: Floats = np.zeros(0, dtype=np.float32)
        self._weights: Floats = np.zeros(0, dtype=np.float32)
        self._times: I64 = np.zeros(0, dtype=np.int64)
        self._doc_numbers: I64 = np.zeros(0, dtype=np.int64)
        self._positions: I64 = np.zeros(0, dtype=np.int64)  # doc number -> main row
        self._pending: Segment | None = None
        self._blocks: list[Segment] = []

    def __len__(self) -> int:
        return self.documents

    # --- writing -------------------------------------------------------------------

    def add(self, entries: list[tuple[Doc, Row]]) -> int:
        """Index docs, replacing older versions of them; returns how many changed.

        Document frequencies count every term of the batch first, so the terms each row
        keeps (see `prune`) are chosen with the batch's own words known."""
        fresh = [(doc, row) for doc, row in entries if self._replace(doc)]
        for _, row in fresh:
            self.df[row.indices] += 1  # a row's feature ids are unique
        self.documents += len(fresh)
        idf_values = self._refresh_idf()
        for doc, row in fresh:
            number = len(self.docs)
            self.docs.append(doc)
            self.by_id[doc.id] = number
            if doc.canonical_url:
                self.by_url[doc.canonical_url] = number
            self.rows[number] = prune(row, idf_values)
        self._pending = None
        return len(fresh)

    def _replace(self, doc: Doc) -> bool:
        previous = self.by_id.get(doc.id)
        if previous is None:
            return True
        old = self.docs[previous]
        if old.content_hash == doc.content_hash and old.language == doc.language:
            return False
        self.dead.add(previous)
        self.rows.pop(previous, None)
        self.documents -= 1
        return True

    def merge_if_due(self) -> None:
        if len(self.rows) >= MERGE_EVERY:
            self.merge()

    def merge(self) -> None:
        """Fold pending rows into the main segment, drop replaced rows, re-sort by time."""
        if not self.rows and not self.dead:
            return
        lengths = np.diff(self._indptr)
        keep = ~np.isin(self._doc_numbers, np.fromiter(self.dead, dtype=np.int64))
        numbers = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))
        new_rows = [self.rows[n] for n in numbers.tolist()]
        new_lengths = np.array([len(r.indices) for r in new_rows], dtype=np.int64)
        all_lengths = np.concatenate((lengths[keep], new_lengths))
        times = np.concatenate(
            (self._times[keep], [micros(self.docs[n].published) for n in numbers.tolist()])
        ).astype(np.int64)
        doc_numbers = np.concatenate((self._doc_numbers[keep], numbers))
        flat_keep = np.repeat(keep, lengths)
        indices = np.concatenate((self._indices[flat_keep], *(r.indices for r in new_rows)))
        counts = np.concatenate((self._counts[flat_keep], *(r.counts for r in new_rows)))
        order = np.argsort(times, kind="stable")
        indptr, positions = _gather(all_lengths, order)
        self._indptr = indptr.astype(np.int32)
        self._indices = indices[positions].astype(np.int32, copy=False)
        self._counts = counts[positions].astype(np.float32, copy=False)
        self._times = times[order]
        self._doc_numbers = doc_numbers[order]
        self._positions = np.full(len(self.docs), -1, dtype=np.int64)
        self._positions[self._doc_numbers] = np.arange(len(self._doc_numbers))
        self.rows.clear()
        self.dead.clear()
        self._pending = None
        self._weights = weigh(
            self._indptr.astype(np.int64), self._indices, self._counts, self._refresh_idf()
        )
        self._blocks = [self._block(start) for start in range(0, len(self._times), BLOCK_ROWS)]

    def _block(self, start: int) -> Segment:
        stop = min(start + BLOCK_ROWS, len(self._times))
        first, last = int(self._indptr[start]), int(self._indptr[stop])
        rows = csr_matrix(
            (
                self._weights[first:last],
                self._indices[first:last],
                self._indptr[start : stop + 1] - first,
            ),
            shape=(stop - start, N_FEATURES),
        )
        return Segment(rows.tocsc(), self._doc_numbers[start:stop], self._times[start:stop])

    def _refresh_idf(self) -> Floats:
        drift = abs(self.documents - self._idf_documents) / max(self._idf_documents, 1)
        if self._idf is None or drift >= IDF_DRIFT:
            self._idf = idf(self.df, self.documents)
            self._idf_documents = self.documents
        return self._idf

    # --- reading -------------------------------------------------------------------

    def current_idf(self) -> Floats:
        return self._idf if self._idf is not None else self._refresh_idf()

    def query_row(self, row: Row) -> tuple[Row, Floats]:
        """A query's row, pruned like stored rows, and its weights."""
        idf_values = self.current_idf()
        pruned = prune(row, idf_values)
        indptr = np.array([0, len(pruned.indices)], dtype=np.int64)
        return pruned, weigh(indptr, pruned.indices, pruned.counts, idf_values)

    def segments(self, since: datetime, before: datetime) -> Iterator[Segment]:
        """Blocks holding rows published in [since, before); callers mask by time."""
        low, high = micros(since), micros(before)
        for block in self._blocks:
            if len(block.times) and block.times[0] < high and block.times[-1] >= low:
                yield block
        pending = self._pending_segment()
        if pending is not None:
            inside = (pending.times >= low) & (pending.times < high)
            if inside.any():
                yield pending
        # Replaced rows are filtered by the caller through `dead`.

    def _pending_segment(self) -> Segment | None:
        if not self.rows:
            return None
        if self._pending is None:
            numbers = np.fromiter(self.rows, dtype=np.int64, count=len(self.rows))
            rows = [self.rows[n] for n in numbers.tolist()]
            lengths = np.array([len(r.indices) for r in rows], dtype=np.int64)
            indptr = np.concatenate(([0], np.cumsum(lengths)))
            indices = np.concatenate([r.indices for r in rows])
            weights = weigh(
                indptr, indices, np.concatenate([r.counts for r in rows]), self.current_idf()
            )
            times = np.array([micros(self.docs[n].published) for n in numbers], dtype=np.int64)
            matrix = csr_matrix(
                (weights, indices, indptr.astype(np.int32)), shape=(len(rows), N_FEATURES)
            ).tocsc()
            self._pending = Segment(matrix, numbers, times)
        return self._pending

    def row_of(self, number: int) -> tuple[Ints, Floats]:
        """The weighted row (feature ids, weights) of a doc number."""
        pending = self.rows.get(number)
        if pending is not None:
            return pending.indices, self.query_row(pending)[1]
        position = int(self._positions[number])
        first, last = int(self._indptr[position]), int(self._indptr[position + 1])
        return self._indices[first:last], self._weights[first:last]

    def nbytes(self) -> int:
        arrays = (self._indptr, self._indices, self._counts, self._weights, self._times, self.df)
        return sum(a.nbytes for a in arrays)


def _gather(lengths: I64, order: I64) -> tuple[I64, I64]:
    """New indptr, and the flat positions that put rows in `order`."""
    starts = np.concatenate(([0], np.cumsum(lengths)))[:-1]
    new_lengths = lengths[order]
    indptr = np.concatenate(([0], np.cumsum(new_lengths))).astype(np.int64)
    offsets = np.repeat(starts[order] - indptr[:-1], new_lengths)
    return indptr, offsets + np.arange(int(indptr[-1]), dtype=np.int64)
