"""Analysers: article text to the hashed term counts the related-news index keeps.

One analyser per language. Both produce two kinds of term:

- words: stop words removed, then normalised (Indonesian: Sastrawi stems; English: plural
  `s` stripped). Title words count `TITLE_WEIGHT` times; these give the readable reasons;
- character 3–4-grams of the title and summary words, which match short texts whose words
  differ only by affixes or spelling (measured on SIB-200: +0.013 P@5 in Indonesian and
  +0.038 in English over words alone; see bench/related_quality.py).

Tokens keep hyphenated reduplication (`menteri-menteri`) as one word; Sastrawi then stems
it to `menteri`, while `sayur-mayur` stays whole. Tokens without a letter are dropped.

News repeats its words all day, so each analyser caches what a distinct token gives (its
word's feature id and its grams' feature ids): an article costs a count of its tokens and
a dictionary lookup per distinct token, and the counts of a batch are summed in numpy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from kabar.model import Article
from kabar.related.vectors import GRAM_FEATURES, N_FEATURES, WORD_FEATURES, Ints, Row, feature_id

TITLE_WEIGHT = 3
GRAM_SIZES = (3, 4)
CACHED_TOKENS = 500_000  # a long-running process clears its token cache past this
_ROW_SHIFT = N_FEATURES.bit_length()  # (row << shift) | feature sorts by row, then feature
# A word joined to the next by hyphens stays one token: `menteri-menteri`, `covid-19`.
_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")

# Sastrawi's list, plus words that carry no subject in Indonesian news copy.
_INDONESIAN_STOP_WORDS_TEXT = """
    ada adalah agak agar akan amat anda antara anu apakah apalagi atau bagaimanapun bagi
    bahwa begitu belum bisa boleh dahulu dalam dan dapat dari daripada demi demikian di dia
    dimana dll dsb dst dua dulunya dengan guna hal hanya harus ia ingin itu itulah jika juga
    kah kami karena ke kecuali kembali kemana kenapa kepada ketika kita lagi lain maka mari
    masih melainkan menurut mengapa mereka namun nanti nggak oh ok oleh pada para pasti pula
    pun saat saja sambil sampai saya sebab sebagai sebelum sebetulnya secara sedangkan
    seharusnya sehingga sekitar selagi selain sementara seolah seperti seraya serta sesuatu
    sesudah setelah seterusnya setiap setidaknya sudah supaya tanpa tapi telah tentang tentu
    terhadap tetapi toh tolong untuk walau ya yaitu yakni yang ini akan bahkan banyak baru
    begini beberapa berbagai bila cukup hingga jadi kata kalau kali lalu lebih mampu masing
    mau meski misalnya mungkin nya punya sangat satu sebuah seorang sejak semua sendiri
    sedang selama seluruh suatu tak tiga yakin ujar ungkap usai
"""
INDONESIAN_STOP_WORDS = frozenset(_INDONESIAN_STOP_WORDS_TEXT.split())

_ENGLISH_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just may me might more most must my myself no nor not now of
    off on once only or other our ours ourselves out over own said same says she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves one two three new also many much
"""
ENGLISH_STOP_WORDS = frozenset(_ENGLISH_STOP_WORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class Token:
    """What one distinct token adds to an article's terms."""

    word: str | None  # None: a stop word, or no letter in it
    word_id: int  # -1 without a word
    gram_ids: Ints  # its character grams' feature ids (stop words and the like: none)


_NOTHING = Token(None, -1, np.zeros(0, dtype=np.int32))


def tokens(text: str) -> list[str]:
    """Lower-case words; hyphenated reduplication stays one token; no-letter tokens dropped."""
    return [t for t in _TOKEN.findall(text.lower()) if _is_word(t)]


def _is_word(token: str) -> bool:
    return len(token) > 1 and any(c.isalpha() for c in token)


class Analyser:
    language = ""
    stop_words: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def normalise(self, token: str) -> str:
        return token

    def words(self, text: str) -> list[str]:
        """The text's words, stop words removed and normalised."""
        found = (self.token(t).word for t in _TOKEN.findall(text.lower()))
        return [w for w in found if w is not None]

    def token(self, token: str) -> Token:
        """What a lower-case token adds (cached)."""
        known = self._tokens.get(token)
        if known is None:
            if len(self._tokens) >= CACHED_TOKENS:
                self._tokens.clear()
            known = self._tokens[token] = self._analyse_token(token)
        return known

    def _analyse_token(self, token: str) -> Token:
        if token in self.stop_words or not _is_word(token):
            return _NOTHING
        # Stems are for words: `covid-19` or `g20` are kept as written.
        word = token if any(c.isdigit() for c in token) else self.normalise(token) or token
        grams = [WORD_FEATURES + feature_id(g, GRAM_FEATURES) for g in _grams(token)]
        if word in self.stop_words:
            return Token(None, -1, np.array(grams, dtype=np.int32))
        return Token(word, feature_id(word, WORD_FEATURES), np.array(grams, dtype=np.int32))


class IndonesianAnalyser(Analyser):
    language = "id"
    stop_words = INDONESIAN_STOP_WORDS

    def __init__(self) -> None:
        super().__init__()
        self._stem = _sastrawi()

    def normalise(self, token: str) -> str:
        return self._stem(token)


class EnglishAnalyser(Analyser):
    language = "en"
    stop_words = ENGLISH_STOP_WORDS

    def normalise(self, token: str) -> str:
        return _plural_stem(token)


def _plural_stem(word: str) -> str:
    """Harman's S-stemmer: just enough to join `sanctions` and `sanction`."""
    if len(word) > 4 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


@cache
def _sastrawi() -> Callable[[str], str]:
    """Sastrawi's stemmer with its root dictionary held as a set.

    As shipped the dictionary is a list, so every lookup scans ~30,000 words (~126
    tokens/s); a set gives identical stems at ~53,000 tokens/s.
    """
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    stemmer = StemmerFactory().create_stemmer().delegatedStemmer
    stemmer.dictionary.words = frozenset(stemmer.dictionary.words)
    stem_word: Callable[[str], str] = stemmer.stem_word
    return stem_word


_ANALYSERS: dict[str, type[Analyser]] = {"id": IndonesianAnalyser, "en": EnglishAnalyser}


@cache
def analyser_for(language: str) -> Analyser:
    """The analyser of a language code (`id`, `en`, or a tag such as `en-US`)."""
    base = language.split("-")[0].lower()
    if base not in _ANALYSERS:
        raise ValueError(f"no related-news analyser for language {language!r} (known: id, en)")
    return _ANALYSERS[base]()


def article_language(article: Article, site_language: str) -> str:
    base = (article.language or site_language).split("-")[0].lower()
    return base if base in _ANALYSERS else site_language


def analyse(batch: Sequence[tuple[Article, Analyser]]) -> list[Row]:
    """Each article's term counts: the words of its title (×`TITLE_WEIGHT`), summary and
    body, and the grams of its title and summary words."""
    word_rows: list[int] = []
    word_ids: list[int] = []
    word_counts: list[int] = []
    gram_rows: list[int] = []
    gram_ids: list[Ints] = [_NOTHING.gram_ids]
    gram_counts: list[int] = []
    for place, (article, analyser) in enumerate(batch):
        title = Counter(_TOKEN.findall(article.title.lower()))
        lead = Counter(_TOKEN.findall(article.summary.lower()))
        words = Counter(_TOKEN.findall(article.body_text.lower()))
        words.update(lead)
        for token, count in title.items():
            words[token] += TITLE_WEIGHT * count
        for token, count in words.items():
            word_id = analyser.token(token).word_id
            if word_id >= 0:
                word_rows.append(place)
                word_ids.append(word_id)
                word_counts.append(count)
        title.update(lead)
        for token, count in title.items():
            grams = analyser.token(token).gram_ids
            if len(grams):
                gram_rows.append(place)
                gram_ids.append(grams)
                gram_counts.append(count)
    lengths = np.array([len(g) for g in gram_ids[1:]], dtype=np.int64)
    rows = np.concatenate(
        (
            np.array(word_rows, dtype=np.int64),
            np.repeat(np.array(gram_rows, dtype=np.int64), lengths),
        )
    )
    features = np.concatenate((np.array(word_ids, dtype=np.int64), *gram_ids)).astype(np.int64)
    counts = np.concatenate(
        (
            np.array(word_counts, dtype=np.float64),
            np.repeat(np.array(gram_counts, dtype=np.float64), lengths),
        )
    )
    return _rows(len(batch), rows, features, counts)


def _rows(
    size: int, rows: NDArray[np.int64], features: NDArray[np.int64], counts: NDArray[np.float64]
) -> list[Row]:
    """Sum the counts of each (row, feature) pair; one Row per place in the batch."""
    keys, inverse = np.unique((rows << _ROW_SHIFT) | features, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=counts, minlength=len(keys)).astype(np.float32)
    ids = (keys & ((1 << _ROW_SHIFT) - 1)).astype(np.int32)
    bounds = np.searchsorted(keys >> _ROW_SHIFT, np.arange(size + 1)).tolist()
    return [Row(ids[a:b], sums[a:b]) for a, b in pairwise(bounds)]


def vocabulary(article: Article, analyser: Analyser) -> dict[int, str]:
    """Word feature id -> word, for the article's words (the readable reasons)."""
    text = f"{article.title}\n{article.summary}\n{article.body_text}".lower()
    found = (analyser.token(t) for t in set(_TOKEN.findall(text)))
    return {t.word_id: t.word for t in found if t.word is not None}


def _grams(token: str) -> list[str]:
    padded = f" {token} "
    return [padded[i : i + size] for size in GRAM_SIZES for i in range(len(padded) - size + 1)]


def char_grams(words: Iterable[str]) -> dict[str, int]:
    """Character-gram counts of words (what `analyse` hashes; the quality bench's baseline)."""
    return dict(Counter(gram for word in words for gram in _grams(word)))
