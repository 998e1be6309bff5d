"""Which articles go into a digest issue.

The window is a duration before the issue time, or everything since the last sent
issue (`since_last`). Sections and tags narrow the choice: an article must be in one of
the listed sections (when any are listed) and carry one of the listed tags (when any are
listed); names match without regard to case. `order: newest` puts the newest first;
`order: priority` ranks by the position of the article's section (then tag) in the
digest's lists, newest first within a rank. The same story reached through two sources
(same URL or same title) appears once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta

from kabar.config import Digest
from kabar.model import Article
from kabar.store import Store

# A `since_last` digest that has never been sent looks back this far.
FIRST_ISSUE_LOOKBACK = timedelta(days=7)


def window_start(digest: Digest, *, issue_time: datetime, since: datetime | None) -> datetime:
    """Where the issue's window opens; it closes at issue_time."""
    if digest.window == "since_last":
        return since if since is not None else issue_time - FIRST_ISSUE_LOOKBACK
    return issue_time - digest.window


def select_articles(
    store: Store,
    digest: Digest,
    *,
    issue_time: datetime,
    since: datetime | None = None,
    exclude: Collection[str] = (),
) -> list[Article]:
    """The issue's articles in issue order, at most `max_items`, leaving out the ids in
    `exclude` (what earlier issues carried)."""
    start = window_start(digest, issue_time=issue_time, since=since)
    newest = store.articles(sources=digest.sources, since=start, before=issue_time)
    wanted = _unique(
        article for article in newest if article.id not in exclude and _matches(digest, article)
    )
    if digest.order == "priority":
        return sorted(wanted, key=lambda article: _rank(digest, article))[: digest.max_items]
    chosen = []
    for article in wanted:  # newest first already; stop reading once full
        chosen.append(article)
        if len(chosen) == digest.max_items:
            break
    return chosen


def _folded(values: Iterable[str]) -> list[str]:
    return [value.casefold() for value in values]


def _matches(digest: Digest, article: Article) -> bool:
    if digest.sections and article.section.casefold() not in _folded(digest.sections):
        return False
    return not digest.tags or bool(set(_folded(article.tags)) & set(_folded(digest.tags)))


def _rank(digest: Digest, article: Article) -> tuple[int, int]:
    """(section position, tag position); unlisted values rank after listed ones. The
    sort is stable, so articles keep their newest-first order within a rank."""
    sections = _folded(digest.sections)
    section = article.section.casefold()
    by_section = sections.index(section) if section in sections else len(sections)
    tags = _folded(digest.tags)
    positions = [tags.index(tag) for tag in _folded(article.tags) if tag in tags]
    return by_section, min(positions, default=len(tags))


def _unique(articles: Iterable[Article]) -> Iterator[Article]:
    seen: set[str] = set()
    for article in articles:
        keys = {f"url:{article.url}", f"title:{' '.join(article.title.casefold().split())}"}
        if keys & seen:
            continue
        seen |= keys
        yield article
