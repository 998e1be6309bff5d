"""Which articles go into an issue: window, filters, order, cap, skipping empty issues."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kabar import config as config_module
from kabar.config import ConfigError
from kabar.digest import prepare_issue
from kabar.select import FIRST_ISSUE_LOOKBACK, select_articles
from kabar.store import Store

from ..support.digest import digest_config, make_article
from ..support.project import SEED_AS_OF, WriteConfig


def _titles(articles: list[object]) -> list[str]:
    return [article.title for article in articles]  # type: ignore[attr-defined]


@pytest.fixture
def stored(store: Store) -> Store:
    """Articles 1..8, published 1..8 hours before SEED_AS_OF, in several sections/tags."""
    store.upsert([
        make_article(1, section="Dunia", tags=("Cina",)),
        make_article(2, section="Nasional", tags=("Pemilu", "DPR")),
        make_article(3, section="dunia", tags=("korea",)),
        make_article(4, section="Olahraga", tags=("Bulu Tangkis",)),
        make_article(5, section="Nasional", tags=("pemilu",)),
        make_article(6, section="Ekonomi"),
        make_article(7, section="Dunia", tags=("Cina",)),
        make_article(8, section="Nasional"),
    ])  # fmt: skip
    return store


def test_a_duration_window_ends_before_the_issue_time(
    write_config: WriteConfig, stored: Store
) -> None:
    digest = digest_config(write_config, window="4h").digest("harian")
    chosen = select_articles(stored, digest, issue_time=SEED_AS_OF)
    assert _titles(chosen) == [f"Berita nomor {n}" for n in (1, 2, 3, 4)]
    later = select_articles(stored, digest, issue_time=SEED_AS_OF - timedelta(hours=3))
    assert _titles(later) == [f"Berita nomor {n}" for n in (4, 5, 6, 7)]


def test_since_last_starts_at_the_last_issue(write_config: WriteConfig, stored: Store) -> None:
    digest = digest_config(write_config, window="since_last").digest("harian")
    since = SEED_AS_OF - timedelta(hours=2, minutes=30)
    assert len(select_articles(stored, digest, issue_time=SEED_AS_OF, since=since)) == 2
    stored.upsert([make_article(99, when=SEED_AS_OF - FIRST_ISSUE_LOOKBACK + timedelta(hours=98))])
    first = select_articles(stored, digest, issue_time=SEED_AS_OF)
    assert "Berita nomor 99" not in _titles(first) and len(first) == 8


def test_sections_and_tags_narrow_without_regard_to_case(
    write_config: WriteConfig, stored: Store
) -> None:
    by_section = digest_config(write_config, window="1d", sections=["DUNIA"]).digest("harian")
    assert _titles(select_articles(stored, by_section, issue_time=SEED_AS_OF)) == [
        "Berita nomor 1", "Berita nomor 3", "Berita nomor 7"]  # fmt: skip
    by_tag = digest_config(write_config, window="1d", tags=["Pemilu"]).digest("harian")
    assert len(select_articles(stored, by_tag, issue_time=SEED_AS_OF)) == 2
    both = digest_config(write_config, window="1d", sections=["Dunia"], tags=["cina"])
    assert _titles(select_articles(stored, both.digest("harian"), issue_time=SEED_AS_OF)) == [
        "Berita nomor 1", "Berita nomor 7"]  # fmt: skip


def test_priority_follows_the_section_list_then_newest(
    write_config: WriteConfig, stored: Store
) -> None:
    digest = digest_config(
        write_config, window="1d", order="priority", sections=["Nasional", "Dunia", "Ekonomi"],
        max_items=6,
    ).digest("harian")  # fmt: skip
    assert _titles(select_articles(stored, digest, issue_time=SEED_AS_OF)) == [
        f"Berita nomor {n}" for n in (2, 5, 8, 1, 3, 7)
    ]


def test_priority_without_a_ranking_is_a_config_error(write_config: WriteConfig) -> None:
    with pytest.raises(ConfigError, match=r"digests\.0: order: priority ranks"):
        digest_config(write_config, order="priority")


def test_max_items_caps_newest_first(write_config: WriteConfig, stored: Store) -> None:
    digest = digest_config(write_config, window="1d", max_items=3).digest("harian")
    assert _titles(select_articles(stored, digest, issue_time=SEED_AS_OF)) == [
        "Berita nomor 1", "Berita nomor 2", "Berita nomor 3"]  # fmt: skip


def test_the_same_story_from_two_sources_appears_once(
    write_config: WriteConfig, store: Store
) -> None:
    original = make_article(1)
    copy = make_article(2, url=original.url, source="wire")
    retitled = make_article(3, title="  berita NOMOR 1 ")
    store.upsert([original, copy, retitled, make_article(4)])
    digest = digest_config(write_config, window="1d", sources=None).digest("harian")
    assert _titles(select_articles(store, digest, issue_time=SEED_AS_OF)) == [
        "Berita nomor 1", "Berita nomor 4"]  # fmt: skip


def test_skip_if_empty_makes_no_issue(write_config: WriteConfig, stored: Store) -> None:
    config = digest_config(write_config, window="1h")
    quiet = SEED_AS_OF - timedelta(hours=20)
    issue = prepare_issue(config, stored, config.digest("harian"),
                          issue_key="harian:pembaca:x", issue_time=quiet)  # fmt: skip
    assert issue is None
    config = digest_config(write_config, window="1h", skip_if_empty=False)
    empty = prepare_issue(config, stored, config.digest("harian"),
                          issue_key="harian:pembaca:x", issue_time=quiet)  # fmt: skip
    assert empty is not None and empty.article_ids == ()
    assert "Halo" in empty.text.fill({"name": "x", "unsubscribe_url": "u", "preferences_url": "p"})


def test_unknown_config_keys_in_templates_are_located(write_config: WriteConfig) -> None:
    templates = {"htm": "x.mjml.j2", "accent_color": "red"}
    path = write_config(
        digests=[{"id": "harian", "list": "pembaca", "subject": "x", "templates": templates}]
    )
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    text = "\n".join(caught.value.problems)
    assert "digests.0.templates.htm: unknown key 'htm' (did you mean 'html'?)" in text
    assert "digests.0.templates.accent_color" in text
