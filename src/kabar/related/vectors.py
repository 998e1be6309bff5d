"""Terms to sparse TF-IDF rows, with a stateless (hashed) vocabulary.

Words and character grams are hashed into two blocks of one feature space, so adding an
article never changes another article's feature ids. Each block is weighted
(1 + ln tf) · idf and scaled to unit length; the word block then counts `WORD_SHARE` as
much as the gram block (SIB-200: 0.7 best in English, equal to 1.0 in Indonesian).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

WORD_FEATURES = 1 << 20
GRAM_FEATURES = 1 << 18
N_FEATURES = WORD_FEATURES + GRAM_FEATURES
WORD_SHARE = 0.7
KEEP_WORDS = 64
KEEP_GRAMS = 256

Ints = NDArray[np.int32]
Floats = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Row:
    """One article's hashed term counts, sorted by feature id."""

    indices: Ints
    counts: Floats

    def to_bytes(self) -> bytes:
        return self.indices.astype("<i4").tobytes() + self.counts.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Row:
        half = len(blob) // 2
        indices = np.frombuffer(blob, dtype="<i4", count=half // 4)
        counts = np.frombuffer(blob, dtype="<f4", offset=half)
        return cls(indices.astype(np.int32, copy=False), counts.astype(np.float32, copy=False))


def feature_id(term: str, features: int) -> int:
    """The term's place in a block of `features` hashed features (CRC-32: stable across
    processes, and in the standard library, so opening the engine imports no scikit-learn)."""
    return zlib.crc32(term.encode()) % features


def idf(df: NDArray[np.int32], documents: int) -> Floats:
    """Smoothed inverse document frequency, as scikit-learn's TfidfTransformer computes it."""
    values = np.log((documents + 1) / (df.astype(np.float64) + 1)) + 1
    return values.astype(np.float32)


def weigh(indptr: NDArray[np.int64], indices: Ints, counts: Floats, idf_values: Floats) -> Floats:
    """Unit-length rows from term counts: per block (1 + ln tf)·idf, words scaled by
    WORD_SHARE. `indptr` delimits the rows in the flat `indices`/`counts` arrays."""
    raw = (1 + np.log(np.maximum(counts, 1))) * idf_values[indices]
    is_word = indices < WORD_FEATURES
    word_norm = np.sqrt(_row_sums(np.where(is_word, raw * raw, 0), indptr))
    gram_norm = np.sqrt(_row_sums(np.where(is_word, 0, raw * raw), indptr))
    share_w = np.where(word_norm > 0, WORD_SHARE, 0.0)
    share_g = np.where(gram_norm > 0, 1.0, 0.0)
    total = np.sqrt(share_w**2 + share_g**2)
    total[total == 0] = 1
    lengths = np.diff(indptr)
    scale_w = np.repeat(share_w / np.maximum(word_norm, 1e-12) / total, lengths)
    scale_g = np.repeat(share_g / np.maximum(gram_norm, 1e-12) / total, lengths)
    return (raw * np.where(is_word, scale_w, scale_g)).astype(np.float32)


def _row_sums(values: NDArray[np.floating], indptr: NDArray[np.int64]) -> NDArray[np.float64]:
    cumulative = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    result: NDArray[np.float64] = cumulative[indptr[1:]] - cumulative[indptr[:-1]]
    return np.maximum(result, 0)


def prune(row: Row, idf_values: Floats) -> Row:
    """Keep a row's `KEEP_WORDS` heaviest words and `KEEP_GRAMS` heaviest grams.

    Scoring cost follows the stored terms of the window's rows; the light tail changes
    little (more-like-this queries use ~25 terms). Queries are pruned the same way, so an
    exact copy still has cosine 1.
    """
    if len(row.indices) <= min(KEEP_WORDS, KEEP_GRAMS):
        return row
    weights = (1 + np.log(np.maximum(row.counts, 1))) * idf_values[row.indices]
    is_word = row.indices < WORD_FEATURES
    keep = np.zeros(len(row.indices), dtype=bool)
    for block, limit in ((is_word, KEEP_WORDS), (~is_word, KEEP_GRAMS)):
        positions = np.flatnonzero(block)
        if len(positions) > limit:
            positions = positions[np.argsort(-weights[positions], kind="stable")[:limit]]
        keep[positions] = True
    return Row(row.indices[keep], row.counts[keep])
