"""Which articles go into which feed: sources, sections and tags filters, and one feed
per section, tag or author. Runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kabar.config import Config, Feed
from kabar.model import Article, article_id
from kabar.publish.feeds import feed_targets, newest_articles
from kabar.store import Store

WIB = timezone(timedelta(hours=7))
START = datetime(2024, 5, 1, 8, 0, tzinfo=WIB)


def article(
    n: int, source: str, section: str, tags: tuple[str, ...], authors: tuple[str, ...]
) -> Article:
    guid = f"https://kabar.example.id/read/{source}-{n}"
    return Article(
        id=article_id(source, guid),
        guid=guid,
        source=source,
        url=guid,
        title=f"Berita {source} {n}",
        published=START + timedelta(minutes=n),
        updated=START + timedelta(minutes=n),
        body_html="<p>Isi</p>",
        section=section,
        tags=tags,
        authors=authors,
    )


@pytest.fixture
def filled(store: Store) -> Store:
    store.upsert(
        [
            article(1, "tempo", "Dunia", ("korea",), ("Istman MP",)),
            article(2, "tempo", "Ekonomi", ("harga", "korea"), ("Istman MP", "Reuters")),
            article(3, "wire", "Dunia", ("harga",), ("Reuters",)),
            article(4, "wire", "ekonomi", (), ()),
            article(5, "tempo", "Ekonomi", ("korea",), ()),
        ]
    )
    return store


def feed(**settings: Any) -> Feed:
    return Config.model_validate(
        {
            "version": 1,
            "site": {"title": "K", "url": "https://kabar.example.id"},
            "feeds": [{"id": "f", "title": "F", **settings}],
        }
    ).feeds[0]


def titles(store: Store, **settings: Any) -> dict[str, list[str]]:
    return {
        t.key: [a.title for a in newest_articles(store, t)]
        for t in feed_targets(store, feed(**settings))
    }


def test_a_feed_takes_the_newest_articles_of_its_sources(filled: Store) -> None:
    assert titles(filled, limit=2) == {"f": ["Berita tempo 5", "Berita wire 4"]}
    assert titles(filled, sources=["wire"]) == {"f": ["Berita wire 4", "Berita wire 3"]}


def test_sections_and_tags_filter_a_feed(filled: Store) -> None:
    assert titles(filled, sections=["Dunia"]) == {"f": ["Berita wire 3", "Berita tempo 1"]}
    assert titles(filled, tags=["harga"], sources=["tempo"]) == {"f": ["Berita tempo 2"]}


def test_split_by_section_makes_one_feed_per_value(filled: Store) -> None:
    # "Ekonomi" and "ekonomi" slugify alike: both get a hash suffix, neither wins.
    split = titles(filled, split_by="section", path="rubrik")
    assert split["rubrik/dunia"] == ["Berita wire 3", "Berita tempo 1"]
    ekonomi = sorted(key for key in split if key.startswith("rubrik/ekonomi-"))
    assert len(ekonomi) == 2
    assert sorted(split[k][0] for k in ekonomi) == ["Berita tempo 5", "Berita wire 4"]
    assert titles(filled, split_by="section", sections=["Dunia"]) == {
        "f/dunia": ["Berita wire 3", "Berita tempo 1"]
    }


def test_split_by_tag_and_author(filled: Store) -> None:
    assert titles(filled, split_by="tag", sources=["tempo"]) == {
        "f/harga": ["Berita tempo 2"],
        "f/korea": ["Berita tempo 5", "Berita tempo 2", "Berita tempo 1"],
    }
    assert titles(filled, split_by="author") == {
        "f/istman-mp": ["Berita tempo 2", "Berita tempo 1"],
        "f/reuters": ["Berita wire 3", "Berita tempo 2"],
    }
