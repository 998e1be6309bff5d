"""Latent topics: articles on one subject match even where they share few words."""

from __future__ import annotations

import numpy as np

from kabar.related.topics import DIMENSIONS, LANDMARKS, NEIGHBOURHOOD, Topics


def _rows(word_sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in word_sets]))).astype(np.int64)
    indices = np.concatenate([sorted(s) for s in word_sets]).astype(np.int32)
    return indptr, indices, np.ones(len(indices), dtype=np.float32)


# No word in common; two of the same subject (sport), one of the other (economy).
SPORT, SPORT_TOO, ECONOMY = list(range(0, 20)), list(range(500, 520)), list(range(1000, 1020))


def _two_subjects(seed: int) -> Topics:
    """Topics fitted on 300 rows of sport words (0–999) and 300 of economy words."""
    rng = np.random.default_rng(seed)
    sport, economy = np.arange(0, 1000), np.arange(1000, 2000)
    sample = [rng.choice(words, 40, replace=False).tolist() for words in (sport, economy)
              for _ in range(300)]  # fmt: skip
    topics = Topics.fit(*_rows(sample), documents=len(sample))
    assert topics is not None
    return topics


def test_topics_join_rows_whose_words_co_occur_and_part_the_others() -> None:
    topics = _two_subjects(7)
    assert topics.components.shape[1] == DIMENSIONS
    first, second, other = topics.vectors(*_rows([SPORT, SPORT_TOO, ECONOMY]))
    assert float(first @ second) > 0.2 > 0.05 > abs(float(first @ other))
    # A row none of whose words has a topic gets none.
    assert not topics.vectors(*_rows([[5000, 5001]])).any()


def test_too_few_rows_fit_no_topics() -> None:
    assert Topics.fit(*_rows([[1, 2, 3]] * DIMENSIONS), documents=DIMENSIONS) is None


def test_neighbourhoods_agree_within_a_subject_and_not_across() -> None:
    topics = _two_subjects(11)
    assert len(topics.landmarks) == LANDMARKS
    around = topics.neighbourhoods(topics.vectors(*_rows([SPORT, SPORT_TOO, ECONOMY])))
    # Each keeps its closest tenth of the landmarks, as a unit vector.
    assert ((around > 0).sum(axis=1) == round(NEIGHBOURHOOD * LANDMARKS)).all()
    assert np.allclose(np.linalg.norm(around, axis=1), 1, atol=1e-5)
    first, second, other = around
    assert float(first @ second) > 0.25 > 0.05 > float(first @ other)


def test_fewer_rows_than_landmarks_make_every_row_a_landmark() -> None:
    rng = np.random.default_rng(3)
    sample = [rng.choice(3000, 40, replace=False).tolist() for _ in range(DIMENSIONS + 50)]
    topics = Topics.fit(*_rows(sample), documents=len(sample))
    assert topics is not None and len(topics.landmarks) == DIMENSIONS + 50
    around = topics.neighbourhoods(topics.vectors(*_rows(sample[:3])))
    assert ((around > 0).sum(axis=1) == round(NEIGHBOURHOOD * (DIMENSIONS + 50))).all()
