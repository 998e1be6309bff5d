"""The analysed terms of each article, kept in the store (table `related_features`).

Loading them rebuilds the index without analysing text again; an article whose terms are
missing or stale (changed content, another analyser) is analysed again by the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from kabar.model import Article, with_offset
from kabar.related.analysis import analyser_key, base_language
from kabar.related.index import Doc
from kabar.store import Store
from kabar.store.tables import articles, related_features

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


def hashes(store: Store) -> Iterator[tuple[str, str]]:
    """(id, content hash) of every stored article: what a loaded index compares against."""
    with store.engine.connect() as connection:
        for row in connection.execute(select(articles.c.id, articles.c.content_hash)):
            yield row.id, row.content_hash


def read(store: Store, site_language: str, *, ids: Sequence[str] | None = None) -> Iterator[Loaded]:
    """Every article (or those with these ids) with its stored terms, in chunks.

    Terms are current when computed from the article's content by its analyser; the
    analyser's language is the article's, else `site_language`."""
    if ids is not None:
        for start in range(0, len(ids), _BATCH):
            yield from _read(store, site_language, ids[start : start + _BATCH])
    else:
        yield from _read(store, site_language, None)


def _read(store: Store, site_language: str, ids: Sequence[str] | None) -> Iterator[Loaded]:
    a, f = articles.c, related_features.c
    query = select(
        a.id, a.url, a.title, a.summary, a.published, a.published_offset, a.section, a.tags,
        a.language, a.content_hash, f.features, f.content_hash.label("fh"),
        f.analyser,
    ).select_from(articles.outerjoin(related_features))  # fmt: skip
    if ids is not None:
        query = query.where(a.id.in_(list(ids)))
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
