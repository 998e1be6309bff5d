"""Article text to the term counts the related-news index keeps.

Two kinds of term, hashed into one feature space (kabar.related.vectors):

- words (kabar.related.analysis): of the title, counted `TITLE_WEIGHT` times, the summary
  and the body; these give the readable reasons;
- character 3–4-grams of the title and summary words, which match short texts whose words
  differ only by affixes or spelling (measured on SIB-200: +0.013 P@5 in Indonesian and
  +0.038 in English over words alone; see bench/related_quality.py).

An article costs its tokenising and a lookup of each token in its analyser's TokenTable;
the batch's words and grams are then gathered, weighted and summed in numpy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from kabar.model import Article
from kabar.related.analysis import TOKEN, Analyser, grams_of
from kabar.related.vectors import N_FEATURES, Rows, empty_rows

TITLE_WEIGHT = 3
_WORD_WEIGHTS = np.array([TITLE_WEIGHT, 1, 1], dtype=np.float64)  # title, summary, body
_ROW_SHIFT = N_FEATURES.bit_length()  # (row << shift) | feature sorts by row, then feature

I64 = NDArray[np.int64]


def analyse(batch: Sequence[tuple[Article, Analyser]]) -> Rows:
    """Each article's term counts, in batch order."""
    if not batch:
        return empty_rows()
    by_analyser: dict[Analyser, list[int]] = {}
    for place, (_, analyser) in enumerate(batch):
        by_analyser.setdefault(analyser, []).append(place)
    parts = [_analyse(batch, places, analyser) for analyser, places in by_analyser.items()]
    rows, features, counts = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return _rows(len(batch), rows, features, counts)


def _analyse(
    batch: Sequence[tuple[Article, Analyser]], places: list[int], analyser: Analyser
) -> tuple[I64, I64, NDArray[np.float64]]:
    table = analyser.current_table()
    numbers: list[int] = []
    lengths: list[int] = []  # tokens of each article's title, summary and body
    for place in places:
        article = batch[place][0]
        title = TOKEN.findall(article.title.lower())
        summary = TOKEN.findall(article.summary.lower())
        body = TOKEN.findall(article.body_text.lower())
        numbers += table.numbers(title + summary + body)
        lengths += (len(title), len(summary), len(body))
    # Words: every token's, weighted by its part. Grams: those of title and summary tokens.
    token_numbers = np.array(numbers, dtype=np.int64)
    part_lengths = np.array(lengths, dtype=np.int64)
    token_places = np.repeat(np.repeat(np.array(places, dtype=np.int64), 3), part_lengths)
    part = np.repeat(np.tile(np.arange(3), len(places)), part_lengths)
    ids = table.word_ids()[token_numbers].astype(np.int64)
    has_word = ids >= 0
    in_head = part < 2
    starts, counts, flat = table.grams()
    head_numbers = token_numbers[in_head]
    gram_counts = counts[head_numbers]
    offsets = np.repeat(starts[head_numbers] - np.cumsum(gram_counts) + gram_counts, gram_counts)
    return (
        np.concatenate((token_places[has_word], np.repeat(token_places[in_head], gram_counts))),
        np.concatenate((ids[has_word], flat[offsets + np.arange(len(offsets))])),
        np.concatenate((_WORD_WEIGHTS[part[has_word]], np.ones(len(offsets)))),
    )


def _rows(size: int, rows: I64, features: I64, counts: NDArray[np.float64]) -> Rows:
    """Sum the counts of each (row, feature) pair into `size` rows."""
    keys, inverse = np.unique((rows << _ROW_SHIFT) | features, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=counts, minlength=len(keys)).astype(np.float32)
    ids = (keys & ((1 << _ROW_SHIFT) - 1)).astype(np.int32)
    indptr = np.searchsorted(keys >> _ROW_SHIFT, np.arange(size + 1)).astype(np.int64)
    return Rows(indptr, ids, sums)


def vocabulary(article: Article, analyser: Analyser) -> dict[int, str]:
    """Word feature id -> word, for the article's words (the readable reasons)."""
    table = analyser.current_table()
    text = f"{article.title}\n{article.summary}\n{article.body_text}".lower()
    numbers = table.numbers(list(set(TOKEN.findall(text))))
    word_ids = table.word_ids()
    return {int(word_ids[n]): word for n in numbers if (word := table.words[n]) is not None}


def char_grams(words: Iterable[str]) -> dict[str, int]:
    """Character-gram counts of words (what `analyse` hashes; the quality bench's baseline)."""
    return dict(Counter(gram for word in words for gram in grams_of(word)))
