"""Analysers: the words of a text, per language.

One analyser per language: tokens, stop words removed, then normalised (Indonesian:
Sastrawi stems; English: plural `s` stripped). Tokens keep hyphenated reduplication
(`menteri-menteri`) as one word; Sastrawi then stems it to `menteri`, while `sayur-mayur`
stays whole. Tokens without a letter are dropped, and tokens with a digit (`covid-19`,
`g20`) are kept as written. kabar.related.terms turns these words, and character grams,
into the counts the index keeps.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kabar.model import Article
from kabar.related.vectors import GRAM_FEATURES, WORD_FEATURES, Ints, feature_id

ANALYSER_VERSION = "2"  # bump when analysis changes, so stored terms are recomputed
GRAM_SIZES = (3, 4)
CACHED_TOKENS = 500_000  # distinct tokens a process keeps analysed

# A word joined to the next by hyphens stays one token: `menteri-menteri`, `covid-19`.
TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")

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


def tokens(text: str) -> list[str]:
    """Lower-case words; hyphenated reduplication stays one token; no-letter tokens dropped."""
    return [t for t in TOKEN.findall(text.lower()) if is_word(t)]


def is_word(token: str) -> bool:
    return len(token) > 1 and any(c.isalpha() for c in token)


class Analyser:
    language = ""
    stop_words: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.table = TokenTable(self)

    def normalise(self, token: str) -> str:
        return token

    def word(self, token: str) -> str | None:
        """The normalised word of a lower-case token; None for stop words and non-words."""
        if token in self.stop_words or not is_word(token):
            return None
        word = token if any(c.isdigit() for c in token) else self.normalise(token) or token
        return None if word in self.stop_words else word

    def words(self, text: str) -> list[str]:
        """The text's words, in order (cached per token)."""
        table = self.current_table()
        found = (table.words[n] for n in table.numbers(TOKEN.findall(text.lower())))
        return [w for w in found if w is not None]

    def current_table(self) -> TokenTable:
        """The token cache; a long-running process starts a new one past `CACHED_TOKENS`."""
        if len(self.table) >= CACHED_TOKENS:
            self.table = TokenTable(self)
        return self.table


class IndonesianAnalyser(Analyser):
    language = "id"
    stop_words = INDONESIAN_STOP_WORDS

    def __init__(self) -> None:
        self._stem = _sastrawi()
        super().__init__()

    def normalise(self, token: str) -> str:
        return self._stem(token)


class EnglishAnalyser(Analyser):
    language = "en"
    stop_words = ENGLISH_STOP_WORDS

    def normalise(self, token: str) -> str:
        return _plural_stem(token)


class TokenTable:
    """What each distinct token gives, numbered in first-seen order: its word, the word's
    feature id (-1: none) and its character grams' feature ids (stop words and non-words
    have none; a word whose stem is a stop word keeps its grams).

    News repeats its words all day, so an article costs a dictionary lookup per token.
    Number 0 stands for every token that gives nothing (stop words, numbers). Appends
    never move what a reader was given a number for: take `numbers` first, then the
    arrays.
    """

    def __init__(self, analyser: Analyser) -> None:
        self._analyser = analyser
        self._numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        self.words: list[str | None] = []
        self._word_ids = _Column(np.int32)
        self._gram_starts = _Column(np.int64)
        self._gram_counts = _Column(np.int64)
        self._grams = _Column(np.int32)
        self._append(None, [])  # number 0: nothing

    def __len__(self) -> int:
        return len(self._numbers)

    def numbers(self, tokens: Sequence[str]) -> list[int]:
        found = list(map(self._numbers.get, tokens))
        if None in found:
            found = [self._add(t) if n is None else n for t, n in zip(tokens, found, strict=True)]
        return found  # type: ignore[return-value]  # no None left

    def word_ids(self) -> Ints:
        return self._word_ids.view()

    def grams(self) -> tuple[NDArray[np.int64], NDArray[np.int64], Ints]:
        """Per token number its first place in the flat gram array and its gram count,
        and the flat array."""
        return self._gram_starts.view(), self._gram_counts.view(), self._grams.view()

    def _add(self, token: str) -> int:
        with self._lock:
            if token in self._numbers:
                return self._numbers[token]
            if token in self._analyser.stop_words or not is_word(token):
                self._numbers[token] = 0
                return 0
            word = self._analyser.word(token)
            grams = [WORD_FEATURES + feature_id(g, GRAM_FEATURES) for g in grams_of(token)]
            self._append(word, grams)
            number = self._numbers[token] = len(self.words) - 1
            return number

    def _append(self, word: str | None, grams: list[int]) -> None:
        self._gram_starts.extend([self._grams.size])
        self._gram_counts.extend([len(grams)])
        self._grams.extend(grams)
        self._word_ids.extend([-1 if word is None else feature_id(word, WORD_FEATURES)])
        self.words.append(word)


class _Column:
    """A numpy array that grows by doubling."""

    def __init__(self, dtype: type[np.integer[Any]]) -> None:
        self.data: NDArray[Any] = np.zeros(256, dtype=dtype)
        self.size = 0

    def extend(self, values: list[int]) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.zeros(max(end, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def view(self) -> NDArray[Any]:
        return self.data[: self.size]


def grams_of(token: str) -> list[str]:
    """The character 3- and 4-grams of a token, padded with a space at both ends."""
    padded = f" {token} "
    return [padded[i : i + size] for size in GRAM_SIZES for i in range(len(padded) - size + 1)]


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
    return base_language(article.language, site_language)


def base_language(language: str, site_language: str) -> str:
    """The analyser language of a language tag: its base if known, else the site's."""
    base = (language or site_language).split("-")[0].lower()
    return base if base in _ANALYSERS else site_language


def analyser_key(language: str) -> str:
    """What stored terms were analysed with: the language and `ANALYSER_VERSION`."""
    return f"{language}/{ANALYSER_VERSION}"
