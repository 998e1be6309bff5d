"""The related-news rules, each pinned on a small hand-made corpus."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kabar.config import Related
from kabar.model import Article, RelatedLink
from kabar.related import RelatedEngine, canonical_url
from kabar.related.analysis import IndonesianAnalyser, analyser_for, tokens

WIB = timezone(timedelta(hours=7))
NOW = datetime(2024, 5, 1, 12, tzinfo=WIB)
LOOSE = Related(min_score=0.01)

STORIES = {
    "query": ("Sanksi baru untuk Korea Utara", "Amerika menjatuhkan sanksi baru kepada Korea "
              "Utara terkait program rudal balistik dan nuklir Pyongyang."),
    "missile": ("Korea Utara uji rudal balistik", "Korea Utara kembali menguji rudal balistik "
                "di laut timur; Amerika dan Jepang mengecam program nuklir Pyongyang."),
    "un": ("PBB perketat sanksi Korea Utara", "Dewan Keamanan PBB memperketat sanksi terhadap "
           "Korea Utara atas program nuklir dan rudal Pyongyang."),
    "kim": ("Kim Jong Un tinjau pabrik rudal", "Pemimpin Korea Utara Kim Jong Un meninjau pabrik "
            "rudal balistik dan program nuklir di Pyongyang."),
    "chili": ("Harga cabai naik di pasar", "Harga cabai rawit di pasar tradisional Jakarta naik "
              "tajam menjelang lebaran, pedagang mengeluh."),
}  # fmt: skip


def article(key: str, days: float, *, text_of: str | None = None, **changes: object) -> Article:
    title, body = STORIES[text_of or key]
    moment = NOW - timedelta(days=days)
    fields: dict[str, object] = {
        "id": key, "guid": key, "source": "test", "url": f"https://kabar.example.id/{key}",
        "title": title, "summary": body, "body_text": body, "published": moment,
        "updated": moment,
    }  # fmt: skip
    fields.update(changes)
    return Article(**fields)  # type: ignore[arg-type]


def corpus() -> list[Article]:
    return [
        article("query", 0, tags=("Korea Utara",)),
        article("missile", 1, tags=("Korea Utara",)),
        article("un", 2),
        article("kim", 3),
        article("chili", 1),
    ]


def ids(items: list) -> list[str | None]:  # type: ignore[type-arg]
    return [item.article_id for item in items]


def test_related_block_ranks_same_story_and_explains_it() -> None:
    articles = corpus()
    items = RelatedEngine.build(articles).related(articles[0], settings=LOOSE)
    assert ids(items) == ["missile", "un", "kim"]  # shared tag first, then by text
    assert "tag:korea-utara" in items[0].reasons
    assert any(r in items[1].reasons for r in ("term:sanksi", "term:nuklir"))
    assert all(0 < item.score <= 1 for item in items)
    assert not any(item.chosen_by_publisher for item in items)


def test_no_future_articles_and_before_is_strict() -> None:
    articles = [*corpus(), article("later", -1, text_of="un")]
    engine = RelatedEngine.build(articles)
    assert "later" not in ids(engine.related(articles[0], settings=LOOSE))
    # Published exactly at `before` is not "before" it.
    at = articles[3].published
    assert "kim" not in ids(
        engine.related(articles[0], before=at, settings=Related(min_score=0.01, per_item=1))
    )
    # A digest issued after "later" may show it.
    issued = NOW + timedelta(days=2)
    assert "later" in ids(engine.related(articles[0], before=issued, settings=LOOSE))


def test_candidate_window() -> None:
    articles = [article("query", 0), article("missile", 40), article("un", 2), article("kim", 3)]
    engine = RelatedEngine.build(articles)
    assert "missile" not in ids(
        engine.related(articles[0], settings=Related(min_score=0.01, min_items=0))
    )
    wide = Related(min_score=0.01, window="60d")
    assert "missile" in ids(engine.related(articles[0], settings=wide))


def test_score_floor() -> None:
    articles = corpus()
    engine = RelatedEngine.build(articles)
    scores = [
        i.score for i in engine.related(articles[0], settings=Related(min_score=0, per_item=4))
    ]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    floor = (scores[2] + scores[3]) / 2  # between the 3rd and the unrelated 4th
    kept = engine.related(articles[0], settings=Related(min_score=floor, per_item=4, min_items=1))
    assert [i.score for i in kept] == scores[:3]


def test_three_or_nothing() -> None:
    articles = [*corpus()[:3], corpus()[4]]  # two related, one unrelated
    engine = RelatedEngine.build(articles)
    assert engine.related(articles[0], settings=Related(min_score=0.1)) == []
    two = engine.related(articles[0], settings=Related(min_score=0.1, min_items=2))
    assert ids(two) == ["missile", "un"]
    assert engine.related(articles[0], settings=Related(per_item=0)) == []


def test_near_copies_are_cut_and_the_list_is_diversified() -> None:
    articles = [
        *corpus(),
        article("query-copy", 0.5, text_of="query"),  # the asking article, syndicated
        article("un-copy", 2.5, text_of="un", url="https://mitra.example.com/un"),
        article(
            "same-url", 0.2, text_of="kim", url="https://www.kabar.example.id/query/?utm_source=x"
        ),
    ]
    items = RelatedEngine.build(articles).related(articles[0], settings=LOOSE)
    assert ids(items) == ["missile", "un", "kim"]


def test_publisher_chosen_items_come_first_and_match_stored_articles() -> None:
    links = (
        RelatedLink("Kim Jong Un tinjau pabrik", "https://kabar.example.id/kim?utm_medium=x", ""),
        RelatedLink("Tak tersimpan", "https://lain.example.org/berita", "Ringkasan"),
        RelatedLink("Dirinya sendiri", "https://kabar.example.id/query", ""),
    )
    articles = [article("query", 0, related=links), *corpus()[1:]]
    items = RelatedEngine.build(articles).related(articles[0], settings=LOOSE)
    assert [(i.article_id, i.chosen_by_publisher, i.score) for i in items[:2]] == [
        ("kim", True, 1.0),
        (None, True, 1.0),
    ]
    assert items[0].published == articles[3].published and items[1].published is None
    assert items[1].summary == "Ringkasan"
    assert ids(items[2:]) == ["missile"]  # per_item 3; "kim" is not shown twice


def test_language_comes_from_the_article_else_the_site() -> None:
    english = Article(
        id="en1", guid="en1", source="t", url="https://x.test/en1",
        title="Sanctions on North Korea",
        summary="", body_text="New sanctions target North Korea missile program.",
        published=NOW - timedelta(days=1), updated=NOW, language="en",
    )  # fmt: skip
    english_query = english.with_changes(
        id="en0", url="https://x.test/en0", published=NOW, title="North Korea fires a missile",
        body_text="North Korea fired a missile despite sanctions on its nuclear program.",
    )  # fmt: skip
    articles = [*corpus(), english]
    engine = RelatedEngine.build(articles, site_language="id")
    assert "en1" not in ids(engine.related(articles[0], settings=Related(min_score=0, min_items=0)))
    assert ids(engine.related(english_query, settings=Related(min_score=0, min_items=1))) == ["en1"]
    assert engine.index.docs[engine.index.by_id["query"]].language == "id"  # from the site
    assert engine.index.docs[engine.index.by_id["en1"]].language == "en"


def test_indonesian_analyser_keeps_reduplication_drops_stop_words_and_stems() -> None:
    assert "menteri-menteri" in tokens("Para menteri-menteri yang hadir")
    words = IndonesianAnalyser().words("Para menteri-menteri yang memperketat sanksi")
    assert words == ["menteri", "ketat", "sanksi"]
    assert analyser_for("en").words("The sanctions were sanctioned") == ["sanction", "sanctioned"]
    with pytest.raises(ValueError, match="no related-news analyser"):
        analyser_for("fr")


def test_canonical_url() -> None:
    assert canonical_url("https://www.kabar.example.id/a/?utm_source=x&id=2#top") == (
        canonical_url("http://kabar.example.id/a?id=2")
    )
    assert canonical_url("https://kabar.example.id/a") != canonical_url(
        "https://kabar.example.id/b"
    )


def test_excluded_urls_are_never_shown_and_the_next_best_takes_their_place() -> None:
    articles = [*corpus(), article("missile-2", 1.5, text_of="missile")]
    links = (RelatedLink("Kim", "https://kabar.example.id/kim", ""),)
    asking = articles[0].with_changes(related=links)
    engine = RelatedEngine.build([asking, *articles[1:]])
    everything = engine.related(asking, settings=LOOSE)
    assert ids(everything) == ["kim", "missile", "un"]
    # A digest holding "kim" and "missile" asks for neither (tracking parameters ignored).
    exclude = ["https://kabar.example.id/kim?utm_source=email", "https://kabar.example.id/missile"]
    items = engine.related(asking, settings=LOOSE, exclude=exclude)
    assert ids(items) == ["missile-2", "un", "chili"]  # chili: LOOSE lets weak matches in


def test_a_short_block_is_filled_from_its_section_within_the_window() -> None:
    """First the section's articles that share words with the query though under the
    floor, best first; then the newest of the section; never anything older."""

    def other(key: str, days: float, section: str, title: str) -> Article:
        fields = {"title": title, "summary": title, "body_text": title}
        return article(key, days, text_of="chili", section=section, **fields)

    articles = [
        article("query", 0, section="Dunia"),
        article("missile", 1, section="Dunia"),
        article("chili", 2, section="Dunia"),
        other("weather", 0.5, "Dunia", "Gelombang panas melanda India dan Filipina"),
        other("sport", 0.2, "Olahraga", "Tim bulu tangkis putri melaju ke semifinal"),
        other("old", 40, "Dunia", "Banjir besar merendam ibu kota Malaysia"),
        other("later", -1, "Dunia", "Gempa kuat mengguncang pesisir Jepang"),
        other("aid", 3, "Dunia", "Amerika mengirim bantuan pangan ke Filipina"),
    ]
    engine = RelatedEngine.build(articles)
    strict = Related(min_score=0.2)
    three_or_nothing = Related(min_score=0.2, fill="none")
    assert engine.related(articles[0], settings=three_or_nothing) == []
    items = engine.related(articles[0], settings=strict)
    assert ids(items) == ["missile", "aid", "weather"]  # never "old"
    assert items[0].score >= 0.2
    assert items[1].reasons == ("section:dunia", "term:amerika", "closest")
    assert 0 < items[1].score < 0.2  # a word in common, under the floor
    assert items[2].reasons == ("section:dunia", "newest") and items[2].score == 0.0
    # Nothing outside the window fills a block, even when that leaves it short.
    five = engine.related(articles[0], settings=Related(min_score=0.2, per_item=5, min_items=3))
    assert ids(five) == ["missile", "aid", "weather", "chili"]
    assert engine.related(articles[0], settings=Related(min_score=0.2, per_item=5)) == []
