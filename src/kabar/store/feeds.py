"""The queries feeds are built from: a feed's articles newest first or oldest after a
point, as narrow (id, content hash) rows, then the whole articles by id; and the values
of a facet, for feeds split by section or tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, or_, select

from kabar.model import Article
from kabar.store import OPTIONAL_COLUMNS, Store
from kabar.store.tables import article_facets, articles

Key = tuple[str, str]  # (article id, content hash)


def facet_values(store: Store, facet: str, *, sources: Sequence[str] | None = None) -> list[str]:
    """The distinct values of a facet (among `sources`' articles), sorted.

    One index probe per value (the next value after the last one), instead of a
    DISTINCT that reads every facet row: 12 sections of 100,000 articles take
    milliseconds, not 150 ms.
    """
    facets = article_facets
    query = select(facets.c.value).where(facets.c.facet == facet)
    if sources is not None:
        query = query.join(articles, articles.c.id == facets.c.article_id).where(
            articles.c.source.in_(list(sources))
        )
    values: list[str] = []
    with store.engine.connect() as connection:
        while True:
            step = query.where(facets.c.value > values[-1]) if values else query
            value = connection.execute(step.order_by(facets.c.value).limit(1)).scalar()
            if value is None:
                break
            values.append(value)
    return sorted(values)


def _having_facet(kind: str, values: Sequence[str]) -> ColumnElement[bool]:
    matching = select(article_facets.c.article_id).where(
        article_facets.c.facet == kind, article_facets.c.value.in_(list(values))
    )
    return articles.c.id.in_(matching)


@dataclass(frozen=True)
class FeedSelection:
    """A feed's articles as (id, content hash) rows, with the columns that order them
    (publication time, then id). Whole articles are fetched by id afterwards: sorting
    only narrow rows keeps each query under a millisecond on 100,000 articles."""

    query: Select[Any]
    moment: ColumnElement[Any]
    key: ColumnElement[Any]

    def newest(self, limit: int) -> Select[Any]:
        return self.query.order_by(self.moment.desc(), self.key).limit(limit)

    def oldest_after(self, moment: datetime | None, last_id: str, limit: int) -> Select[Any]:
        query = self.query
        if moment is not None:
            query = query.where(
                or_(self.moment > moment, and_(self.moment == moment, self.key > last_id))
            )
        return query.order_by(self.moment, self.key).limit(limit)


def feed_selection(
    *,
    sources: Sequence[str] | None,
    facets: Sequence[tuple[str, Sequence[str]]],
    split: tuple[str, str] | None = None,
) -> FeedSelection:
    """Articles of `sources` (all when None) having any of each facet's values, and, with
    `split` (facet, value), only that value's."""
    if split is not None:
        # Through the facet index (facet, value, published): the newest rows of one
        # section are read in order instead of sorting the whole section.
        table = article_facets
        query = (
            select(table.c.article_id, articles.c.content_hash)
            .select_from(table.join(articles, articles.c.id == table.c.article_id))
            .where(table.c.facet == split[0], table.c.value == split[1])
        )
        moment, key = table.c.published, table.c.article_id
    else:
        query = select(articles.c.id, articles.c.content_hash)
        moment, key = articles.c.published, articles.c.id
    if sources is not None:
        query = query.where(articles.c.source.in_(sources))
    for kind, values in facets:
        if values:
            query = query.where(_having_facet(kind, values))
    return FeedSelection(query, moment, key)


def feed_keys(store: Store, query: Select[Any]) -> list[Key]:
    with store.engine.connect() as connection:
        return [(row[0], row[1]) for row in connection.execute(query)]


# What feeds show of an article: the body text only stands in for a missing HTML body.
_FEED_COLUMNS = [
    *(c for c in articles.c if c.name not in OPTIONAL_COLUMNS),
    case((articles.c.body_html == "", articles.c.body_text), else_="").label("body_text"),
]


def feed_articles(store: Store, keys: Sequence[Key]) -> list[Article]:
    """The articles for `keys`, in that order, with what feeds show of them (reading
    only that is a third cheaper than whole rows)."""
    ids = [article_id for article_id, _ in keys]
    query = select(*_FEED_COLUMNS).where(articles.c.id.in_(ids))
    found = {a.id: a for a in store.query(query)}
    return [found[article_id] for article_id in ids if article_id in found]
