"""Related news when the engine finds too few: the links publishers placed with an
article, and the provider that tries the engine first and falls back to them.

A digest asks any `RelatedProvider` for each article's block; `open_related` gives the
one issues use.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kabar.config import Config, Related
from kabar.model import Article, RelatedLink, article_id
from kabar.related.index import canonical_url
from kabar.store import Store


class RelatedItemLike(Protocol):
    """The fields of kabar.related.RelatedItem a digest shows."""

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def published(self) -> datetime | None: ...


class RelatedProvider(Protocol):
    def related(
        self, article: Article, *, before: datetime, settings: Related, exclude: Collection[str]
    ) -> Sequence[RelatedItemLike]: ...


@dataclass(frozen=True)
class PublisherLink:
    """A related item the publisher chose (Article.related), shaped like RelatedItem."""

    title: str
    url: str
    summary: str
    published: datetime | None
    article_id: str | None
    score: float = 1.0
    reasons: tuple[str, ...] = ("chosen by publisher",)
    chosen_by_publisher: bool = True


class PublisherLinks:
    """Related news as publishers chose it. An article's own "Berita terkait" list comes
    first; then, for an article that a page lists, that page and the other items it
    lists beside this one (the publisher grouped them). Times come from the linked
    article when the store holds it (seed pages store each listed item as an article of
    its own). Like the engine, it shows a block only when it has at least `min_items`
    (default: per_item) items, never shows an excluded URL (the issue's own articles and
    the items already under other cards), and keeps to the window: an article's own list
    may link any story published before the issue, but a grouping borrowed from a page
    only stories known to be inside the window."""

    SCAN_LIMIT = 10_000  # newest articles searched for pages that list an article

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listed_on: dict[str, list[Article]] | None = None

    def related(
        self,
        article: Article,
        *,
        before: datetime,
        settings: Related,
        exclude: Collection[str] = (),
    ) -> list[PublisherLink]:

        chosen: dict[str, PublisherLink] = {}
        excluded = {canonical_url(url) for url in exclude} | {canonical_url(article.url)}
        for link, linked, own in self._candidates(article):
            if len(chosen) == settings.per_item:
                break
            key = canonical_url(link.url) or f"#{len(chosen)}"
            if key in excluded or key in chosen:
                continue
            if linked is None and link.url:
                linked = self.store.get(article_id(article.source, link.url))
            if linked is not None and linked.published >= before:
                continue  # not published yet at issue time
            if not own and (linked is None or linked.published < before - settings.window):
                continue  # borrowed from a page: only what is known to be recent
            chosen[key] = PublisherLink(
                title=link.title,
                url=link.url,
                summary=link.summary or (linked.summary if linked else ""),
                published=linked.published if linked else None,
                article_id=linked.id if linked else None,
            )
        minimum = settings.per_item if settings.min_items is None else settings.min_items
        return list(chosen.values()) if len(chosen) >= minimum else []

    def _candidates(self, article: Article) -> Iterator[tuple[RelatedLink, Article | None, bool]]:
        """(link, the linked article if known, whether the link is the article's own)."""
        for link in article.related:
            yield link, None, True
        for page in self._pages_listing(article.url):
            yield RelatedLink(page.title, page.url, page.summary), page, False
            for link in page.related:
                yield link, None, False

    def _pages_listing(self, url: str) -> list[Article]:
        if self._listed_on is None:
            self._listed_on = {}
            for page in self.store.articles(limit=self.SCAN_LIMIT):
                for link in page.related:
                    self._listed_on.setdefault(link.url, []).append(page)
        return self._listed_on.get(url, []) if url else []


class EngineThenPublisher:
    """The engine's block; where it has none (too few good matches), the links that
    publishers placed together with the article."""

    def __init__(self, engine: RelatedProvider, publisher: PublisherLinks) -> None:
        self.engine = engine
        self.publisher = publisher

    def related(
        self,
        article: Article,
        *,
        before: datetime,
        settings: Related,
        exclude: Collection[str] = (),
    ) -> Sequence[RelatedItemLike]:
        found = self.engine.related(article, before=before, settings=settings, exclude=exclude)
        return found or self.publisher.related(
            article, before=before, settings=settings, exclude=exclude
        )


def open_related(config: Config, store: Store) -> RelatedProvider:
    """The related-news engine, with publishers' links where it finds too few."""
    from kabar.related.engine import RelatedEngine

    return EngineThenPublisher(RelatedEngine.open(config, store), PublisherLinks(store))
