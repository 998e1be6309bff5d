"""The analysed terms of each article, kept in the store (table `related_features`).

Loading them rebuilds the index without analysing text again; an article whose terms are
missing or stale (changed content, another analyser) is analysed again by the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.sql import Select

from kabar.model import Article, with_offset
from kabar.related.analysis import analyser_key, base_language
from kabar.related.index import Doc
from kabar.store import Store
from kabar.store.tables import articles, related_features

_Query = TypeVar("_Query", bound=Select[Any])
_BATCH = 500
_READ_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Loaded:
    """A chunk of stored articles: those with current terms, and the ids of the others."""

    docs: list[Doc]
    blobs: list[bytes]
    stale: list[str]


def save(
    store: Store, articles: Sequence[Article], analysers: Sequence[str], blobs: Sequence[bytes]
) -> None:
    """Store the terms of these articles, replacing older ones."""
    with store.engine.begin() as connection:
        for start in range(0, len(articles), _BATCH):
            stop = start + _BATCH
            batch = articles[start:stop]
            connection.execute(
                delete(related_features).where(
                    related_features.c.article_id.in_([a.id for a in batch])
                )
            )
            connection.execute(
                insert(related_features),
                [
                    {
                        "article_id": a.id,
                        "content_hash": a.content_hash,
                        "analyser": k,
                        "features": f,
                    }
                    for a, k, f in zip(batch, analysers[start:stop], blobs[start:stop], strict=True)
                ],
            )


def current(store: Store, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(content hash, analyser) of the stored terms of these articles."""
    found: dict[str, tuple[str, str]] = {}
    f = related_features.c
    with store.engine.connect() as connection:
        for start in range(0, len(ids), _BATCH):
            query = select(f.article_id, f.content_hash, f.analyser).where(
                f.article_id.in_(list(ids[start : start + _BATCH]))
            )
            found.update(
                (r.article_id, (r.content_hash, r.analyser)) for r in connection.execute(query)
            )
    return found


@dataclass(frozen=True, slots=True)
class Span:
    """Publication times [since, until); None leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )

    def covers(self, since: datetime, until: datetime) -> bool:
        """Whether [since, until) lies inside this span."""
        return (self.since is None or since >= self.since) and (
            self.until is None or until <= self.until
        )

    def contains(self, other: Span) -> bool:
        return (self.since is None or (other.since is not None and other.since >= self.since)) and (
            self.until is None or (other.until is not None and other.until <= self.until)
        )

    def overlaps(self, other: Span) -> bool:
        return (self.since is None or other.until is None or other.until > self.since) and (
            self.until is None or other.since is None or other.since < self.until
        )

    def within(self, query: _Query) -> _Query:
        if self.since is not None:
            query = query.where(articles.c.published >= self.since)
        if self.until is not None:
            query = query.where(articles.c.published < self.until)
        return query


EVERYTHING = Span()


def newest(store: Store) -> datetime | None:
    """The publication time of the newest stored article."""
    with store.engine.connect() as connection:
        moment: datetime | None = connection.execute(
            select(func.max(articles.c.published))
        ).scalar_one()
    if moment is not None and moment.tzinfo is None:
        moment = with_offset(moment, 0)
    return moment


def hashes(store: Store, span: Span = EVERYTHING) -> Iterator[tuple[str, str]]:
    """(id, content hash) of the stored articles published in `span`: what a loaded
    index compares against."""
    with store.engine.connect() as connection:
        query = span.within(select(articles.c.id, articles.c.content_hash))
        for row in connection.execute(query):
            yield row.id, row.content_hash


def at_urls(store: Store, site_language: str, urls: Sequence[str]) -> dict[str, Doc]:
    """Stored articles at these URLs (as written), by canonical URL: publisher-chosen
    links to articles outside the span the engine holds."""
    a = articles.c
    query = select(
        a.id, a.url, a.title, a.summary, a.published, a.published_offset, a.section, a.tags,
        a.language, a.content_hash,
    ).where(a.url.in_(list(urls)))  # fmt: skip
    found: dict[str, Doc] = {}
    with store.engine.connect() as connection:
        for row in connection.execute(query):
            language = base_language(row.language, site_language)
            moment = with_offset(row.published, row.published_offset)
            doc = Doc.of(
                row.id, row.url, row.title, row.summary, moment, row.section, row.tags,
                language, row.content_hash,
            )  # fmt: skip
            found[doc.canonical_url] = doc
    return found


def read(
    store: Store,
    site_language: str,
    *,
    ids: Sequence[str] | None = None,
    span: Span = EVERYTHING,
) -> Iterator[Loaded]:
    """The articles published in `span` (or those with these ids) with their stored
    terms, in chunks.

    Terms are current when computed from the article's content by its analyser; the
    analyser's language is the article's, else `site_language`."""
    if ids is not None:
        for start in range(0, len(ids), _BATCH):
            yield from _read(store, site_language, ids[start : start + _BATCH], EVERYTHING)
    else:
        yield from _read(store, site_language, None, span)


def _read(
    store: Store, site_language: str, ids: Sequence[str] | None, span: Span
) -> Iterator[Loaded]:
    a, f = articles.c, related_features.c
    query = select(
        a.id, a.url, a.title, a.summary, a.published, a.published_offset, a.section, a.tags,
        a.language, a.content_hash, f.features, f.content_hash.label("fh"),
        f.analyser,
    ).select_from(articles.outerjoin(related_features))  # fmt: skip
    if ids is not None:
        query = query.where(a.id.in_(list(ids)))
    query = span.within(query)
    keys: dict[str | None, tuple[str, str]] = {}  # language tag -> (language, analyser key)
    with store.engine.connect() as connection:
        for rows in connection.execute(query).yield_per(_READ_CHUNK).partitions():
            chunk = Loaded([], [], [])
            for (
                id, url, title, summary, published, offset, section, tags, language,
                content_hash, features, features_hash, analyser,
            ) in rows:  # fmt: skip
                key = keys.get(language)
                if key is None:
                    base = base_language(language, site_language)
                    key = keys[language] = (base, analyser_key(base))
                if features is None or features_hash != content_hash or analyser != key[1]:
                    chunk.stale.append(id)
                    continue
                moment = with_offset(published, offset)
                chunk.docs.append(
                    Doc.of(id, url, title, summary, moment, section, tags, key[0], content_hash)
                )
                chunk.blobs.append(features)
            yield chunk
