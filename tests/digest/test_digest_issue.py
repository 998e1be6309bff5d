"""Preparing an issue: render once, personalise safely, stay small, send what was rendered."""

from __future__ import annotations

import email
import html
import json
import logging
import re
from dataclasses import replace
from datetime import timedelta
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from kabar.config import Config, ConfigError, Related
from kabar.digest import load_prepared, prepare_issue
from kabar.model import Recipient, RelatedLink, message_id
from kabar.related.fallback import EngineThenPublisher, PublisherLink, PublisherLinks, open_related
from kabar.render.email import HTML_BUDGET
from kabar.render.templates import wrap
from kabar.store import Store

from ..support.digest import RECIPIENT, FakeRelated, digest_config, make_article, publisher_links
from ..support.project import SEED_AS_OF, WriteConfig

TRICKY = ["{{ 7*7 }}", "{% raw %}", "<script>alert(1)</script>", "{date}", "a & b"]


def _prepare(
    config: Config, store: Store, related: FakeRelated | None = None, **options: Any
) -> Any:
    """The issue at SEED_AS_OF, with `related` or else the publisher's own links, so the
    tests don't depend on the related-news engine's scoring."""
    issue = prepare_issue(
        config,
        store,
        config.digest("harian"),
        issue_key="harian:pembaca:2024-05-01",
        issue_time=SEED_AS_OF,
        related=(lambda _config, _store: related) if related else publisher_links,
        **options,
    )
    assert issue is not None
    return issue


def _related_items(count: int, summary: str = "Ringkasan berita terkait.") -> FakeRelated:
    return FakeRelated(lambda article: [
        PublisherLink(title=f"Terkait {article.title} #{n}",
                      url=f"https://kabar.example.id/t/{article.id}/{n}",
                      summary=summary, published=SEED_AS_OF - timedelta(hours=4 + n),
                      article_id=None)
        for n in range(count)
    ])  # fmt: skip


def test_article_text_stays_literal_in_html_text_and_subject(
    write_config: WriteConfig, store: Store
) -> None:
    title = " ".join(TRICKY)
    related = (RelatedLink("{% raw %} terkait", "https://e.x/r"),)
    store.upsert(
        [make_article(1, title=title, summary=title, section="{{ 6*6 }}", related=related)]
    )
    config = digest_config(write_config, subject="Kabar: {headline}")
    issue = _prepare(config, store, _related_items(1, summary="{{ 8*8 }} {% endraw %}"))
    page = issue.html_for(RECIPIENT)
    text = issue.text_for(RECIPIENT)
    assert issue.subject == f"Kabar: {title}"
    for tricky in TRICKY:
        assert tricky in text
        assert html.escape(tricky, quote=False) in page
    assert "<script>" not in page and "49" not in page and "49" not in text
    assert "{{ 6*6 }}" in text and "{{ 8*8 }} {% endraw %}" in page
    message = email.message_from_bytes(issue.message_for(RECIPIENT), policy=default)
    assert message["Subject"] == f"Kabar: {title}"


def test_a_subscriber_gets_only_their_own_values(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(n) for n in range(1, 4)])
    issue = _prepare(digest_config(write_config), store)
    other = Recipient(subscriber_id="sub-2", email="siti@example.com", name="",
                      unsubscribe_url="https://kabar.example.id/u/TOKEN-2",
                      preferences_url="https://kabar.example.id/p/TOKEN-2")  # fmt: skip
    first, second = issue.html_for(RECIPIENT), issue.html_for(other)
    assert "Halo, Budi Santoso!" in first and "Halo, Pembaca!" in second
    assert html.escape(RECIPIENT.unsubscribe_url) in first and "TOKEN-1" not in second
    # Apart from the slots, the two are the same render.
    strip = re.compile(r"Budi Santoso|Pembaca|TOKEN-\d(\?list=pembaca&amp;x=1)?")
    assert strip.sub("", first) == strip.sub("", second)
    assert issue.message_id_for(RECIPIENT) == message_id(
        "harian:pembaca:2024-05-01", "sub-1", "kabar.example.id"
    )


def test_a_recipient_without_unsubscribe_link_is_refused(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([make_article(1)])
    issue = _prepare(digest_config(write_config), store)
    with pytest.raises(ValueError, match="unsubscribe_url must be an http"):
        issue.message_for(Recipient(subscriber_id="s", email="s@example.com"))
    with pytest.raises(ValueError, match="javascript"):
        issue.message_for(replace(RECIPIENT, unsubscribe_url="javascript:alert(1)"))


def test_headers_of_a_complete_message(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(1)])
    mailing_list = {
        "id": "pembaca",
        "name": "Pembaca Kabar",
        "reply_to": "redaksi@kabar.example.id",
        "from": "Kabar Contoh — Redaksi <redaksi@kabar.example.id>",
    }
    config = digest_config(
        write_config,
        top_lists=[mailing_list],
        top_delivery={"feedback_id": "{digest}:{list}:kabar"},
    )
    raw = _prepare(config, store).message_for(RECIPIENT)
    message = email.message_from_bytes(raw, policy=default)
    assert message["From"].addresses[0].display_name == "Kabar Contoh — Redaksi"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0]  # the From name is RFC 2047-encoded
    assert message["To"] == "Budi Santoso <budi@example.com>"
    assert message["Reply-To"] == "redaksi@kabar.example.id"
    assert message["Subject"] == "Kabar pagi, 1 Mei 2024"
    assert message["Date"] == "Wed, 01 May 2024 12:00:00 +0700"
    assert message["Message-ID"] == message_id("harian:pembaca:2024-05-01", "sub-1",
                                               "kabar.example.id")  # fmt: skip
    assert message["List-Id"] == "Pembaca Kabar <pembaca.kabar.example.id>"
    assert message["List-Unsubscribe"] == (
        f"<{RECIPIENT.unsubscribe_url}>, <{RECIPIENT.unsubscribe_mailto}>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Feedback-ID"] == "harian:pembaca:kabar"
    assert message["MIME-Version"] == "1.0"


def _long_issue(store: Store, count: int) -> None:
    long_text = "Kalimat ringkasan yang cukup panjang untuk sebuah berita. " * 5
    store.upsert([
        make_article(n, when=SEED_AS_OF, title=f"Judul berita yang panjang sekali nomor {n} " * 2,
                     summary=long_text, section="Nasional",
                     image_url=f"https://kabar.example.id/img/{n}.jpg", image_alt=f"Foto {n}")
        for n in range(1, count + 1)
    ])  # fmt: skip


def test_a_twelve_item_issue_stays_under_100_kb(write_config: WriteConfig, store: Store) -> None:
    _long_issue(store, 12)
    issue = _prepare(digest_config(write_config, window="2d"), store, _related_items(3))
    page = issue.html_for(RECIPIENT)
    assert len(issue.article_ids) == 12
    assert page.count("Terkait ") == 36
    assert len(page.encode()) < 100_000


def test_an_issue_past_gmails_clip_limit_warns_and_trims(
    write_config: WriteConfig, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _long_issue(store, 40)
    config = digest_config(write_config, window="3d", max_items=40)
    with caplog.at_level(logging.WARNING, logger="kabar.render.email"):
        issue = _prepare(config, store, _related_items(5))
    assert 12 <= len(issue.article_ids) < 40
    assert len(issue.html_for(RECIPIENT).encode()) < HTML_BUDGET
    assert re.search(r"digest harian: \d+ of 40 articles left out .* Gmail's clip limit",
                     caplog.text)  # fmt: skip
    kept = set(issue.article_ids)
    assert [card.article_id for card in issue.view.cards] == list(issue.article_ids)
    assert len(kept) == len(issue.article_ids)


def test_images_have_alt_and_no_unconfigured_remote_assets(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([
        make_article(1, image_url="https://img.kabar.example.id/1.jpg", image_alt="Foto satu"),
        make_article(2, image_url="https://img.kabar.example.id/2.jpg"),
        make_article(3, image_url="javascript:alert(1)"),
    ])  # fmt: skip
    config = digest_config(write_config, top_site={
        "title": "Kabar Contoh", "url": "https://kabar.example.id",
        "logo_url": "https://kabar.example.id/logo.png"})  # fmt: skip
    page = _prepare(config, store).html_for(RECIPIENT)
    tree = lxml_html.fromstring(page)
    images = tree.xpath("//img")
    assert {img.get("src") for img in images} == {
        "https://kabar.example.id/logo.png",
        "https://img.kabar.example.id/1.jpg",
        "https://img.kabar.example.id/2.jpg",
    }
    assert all(img.get("alt", "").strip() for img in images)
    assert {img.get("alt") for img in images} >= {"Kabar Contoh", "Foto satu", "Berita nomor 2"}
    assert not tree.xpath("//link") and "@import" not in page and "url(" not in page
    assert "googleapis" not in page and "javascript:" not in page


def test_configured_fonts_are_the_only_remote_css(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(1)])
    font_url = "https://fonts.example.id/merriweather.css"
    config = digest_config(write_config, templates={"fonts": {"Merriweather": font_url}})
    page = _prepare(config, store).html_for(RECIPIENT)
    assert font_url in page and "font-family:Merriweather, Helvetica Neue" in page
    assert "googleapis" not in page


def test_admins_override_templates_by_path(
    write_config: WriteConfig, store: Store, project: Path
) -> None:
    store.upsert([make_article(1)])
    (project / "tpl").mkdir()
    (project / "tpl" / "mine.txt.j2").write_text(
        "{% for card in issue.cards %}* {{ card.title }}\n{% endfor %}"
        "{{ _('Unsubscribe') }}: {{ slots.unsubscribe_url }}\n"
    )
    (project / "tpl" / "mine.mjml.j2").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Edisi khusus {{ issue.cards|length }}"
        ' <a href="{{ slots.unsubscribe_url }}">x</a></mj-text></mj-column></mj-section>'
        "</mj-body></mjml>"
    )
    config = digest_config(write_config, templates={"html": "tpl/mine.mjml.j2",
                                                    "text": "tpl/mine.txt.j2"})  # fmt: skip
    issue = _prepare(config, store)
    assert issue.text_for(RECIPIENT) == (
        f"* Berita nomor 1\nBerhenti berlangganan: {RECIPIENT.unsubscribe_url}\n"
    )
    assert "Edisi khusus 1" in issue.html_for(RECIPIENT)


def test_a_template_without_an_unsubscribe_link_is_refused(
    write_config: WriteConfig, store: Store, project: Path
) -> None:
    store.upsert([make_article(1)])
    (project / "plain.txt.j2").write_text("{{ issue.subject }}\n")
    config = digest_config(write_config, templates={"text": "plain.txt.j2"})
    with pytest.raises(Exception, match="the text template shows no unsubscribe link"):
        _prepare(config, store)


def test_a_missing_template_is_a_clear_error(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(1)])
    config = digest_config(write_config, templates={"html": "tpl/none.mjml.j2"})
    with pytest.raises(Exception, match=r"template 'tpl/none.mjml.j2' not found"):
        _prepare(config, store)


def test_dump_and_load_send_exactly_what_was_rendered(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([make_article(n, summary="{{ 7*7 }} é") for n in range(1, 5)])
    config = digest_config(write_config)
    issue = _prepare(config, store, _related_items(2))
    stored = json.loads(json.dumps(issue.dump()))
    store.upsert([make_article(1, title="Changed after rendering")])
    loaded = load_prepared(config, stored)
    assert loaded.message_for(RECIPIENT) == issue.message_for(RECIPIENT)
    for name in ("issue_key", "digest_id", "list_id", "subject", "article_ids", "issue_time"):
        assert getattr(loaded, name) == getattr(issue, name)
    with pytest.raises(ValueError, match="format"):
        load_prepared(config, {**stored, "format": 1})


def test_an_issue_in_two_languages_keeps_both_through_dump_and_load(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([make_article(n) for n in range(1, 4)])
    config = digest_config(write_config)
    issue = _prepare(config, store, _related_items(1), locales={"", "id", "en"})
    assert issue.languages == ("id", "en")
    english = replace(RECIPIENT, locale="en")
    assert "Hello, Budi Santoso!" in issue.text_for(english)
    assert "Halo, Budi Santoso!" in issue.text_for(RECIPIENT)
    assert "Halo, Budi Santoso!" in issue.text_for(replace(RECIPIENT, locale="fr"))
    loaded = load_prepared(config, json.loads(json.dumps(issue.dump())))
    assert loaded.message_for(english) == issue.message_for(english)
    assert loaded.message_for(RECIPIENT) == issue.message_for(RECIPIENT)
    # An issue stored before variants existed (format 2) still sends, in its language.
    older = {k: v for k, v in issue.dump().items() if k != "variants"} | {"format": 2}
    assert load_prepared(config, older).message_for(english) == issue.message_for(RECIPIENT)


def test_subject_and_preheader_per_language(write_config: WriteConfig, store: Store) -> None:
    """An English reader gets the English subject, not an Indonesian one with an English
    date; a language the config gives no text for falls back to the digest's locale."""
    store.upsert([make_article(n) for n in range(1, 4)])
    config = digest_config(
        write_config,
        subject={"id": "Kabar pagi, {date}", "en": "Morning news, {date}"},
        preheader={"id": "Berita pilihan hari ini"},
    )
    issue = _prepare(config, store, _related_items(1), locales={"", "id", "en"})
    english = issue.localised("en")
    assert issue.subject == "Kabar pagi, 1 Mei 2024"
    assert english.subject == "Morning news, 1 May 2024"
    assert english.view.preheader == issue.view.preheader == "Berita pilihan hari ini"
    assert (
        "Subject: Morning news, 1 May 2024"
        in issue.message_for(replace(RECIPIENT, locale="en")).decode()
    )
    with pytest.raises(ConfigError, match="one per language"):
        digest_config(write_config, subject={})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \{nope\}: use \{date\}"):
        digest_config(write_config, subject={"id": "Kabar pagi, {nope}", "en": "{date}"})


def test_related_items_come_from_the_provider(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(1), make_article(2)])
    provider = _related_items(5)
    config = digest_config(write_config, related={"per_item": 2})
    issue = _prepare(config, store, provider)
    text = issue.text_for(RECIPIENT)
    assert provider.calls == 2
    assert text.count("* Terkait") == 4 and "4 jam lalu" in text and "5 jam lalu" in text
    assert "Berita terkait:" in text


def test_publisher_links_are_the_fallback_provider(write_config: WriteConfig, store: Store) -> None:
    linked = make_article(5, title="Berita lama yang terkait")
    future = make_article(-3, title="Belum terbit")
    main = make_article(1, related=(
        RelatedLink(future.title, future.url, ""),
        RelatedLink(linked.title, linked.url, "Ringkas."),
        RelatedLink("Tanpa tautan", "", ""),
    ))  # fmt: skip
    store.upsert([main, linked, future])
    config = digest_config(write_config, window="2h", related={"per_item": 3, "min_items": 2})
    issue = _prepare(config, store)
    card = issue.view.cards[0]
    assert [item.title for item in card.related] == ["Berita lama yang terkait", "Tanpa tautan"]
    assert card.related[0].published == linked.published and card.related[1].published is None
    assert "5 jam lalu" in issue.html_for(RECIPIENT)
    # Fewer than min_items links: no block, as the engine would decide.
    fewer = digest_config(write_config, window="2h", related={"per_item": 3})
    assert _prepare(fewer, store).view.cards[0].related == ()


def test_an_article_listed_on_a_page_is_related_to_the_page_and_its_neighbours(
    write_config: WriteConfig, store: Store
) -> None:
    items = [make_article(n, title=f"Terkait {n}") for n in (2, 3, 4, 5)]
    listed = tuple(RelatedLink(item.title, item.url, item.summary) for item in items)
    page = make_article(30, title="Halaman utama", related=listed)
    store.upsert([page, *items])
    config = digest_config(write_config, window="150m", related={"per_item": 3})
    issue = _prepare(config, store)
    assert [card.title for card in issue.view.cards] == ["Terkait 2"]
    related = issue.view.cards[0].related
    assert [item.title for item in related] == ["Halaman utama", "Terkait 3", "Terkait 4"]
    assert related[0].published == page.published


def test_the_default_provider_is_the_engine_when_installed(config: Config, store: Store) -> None:
    provider = open_related(config, store)
    try:
        from kabar.related import RelatedEngine  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:
        assert isinstance(provider, PublisherLinks)
    else:
        assert isinstance(provider, EngineThenPublisher)
        assert isinstance(provider.engine, RelatedEngine)


def test_publisher_links_fill_in_where_the_engine_has_no_block(
    write_config: WriteConfig, store: Store
) -> None:
    items = [make_article(n, title=f"Terkait {n}") for n in (2, 3, 4)]
    listed = tuple(RelatedLink(item.title, item.url, item.summary) for item in items)
    page = make_article(30, title="Halaman utama", related=listed)
    store.upsert([page, *items])
    engine = FakeRelated(lambda article: [] if article.title == "Terkait 2" else ["engine"])
    provider = EngineThenPublisher(engine, PublisherLinks(store))
    settings = Related(per_item=3)
    chosen = provider.related(items[0], before=SEED_AS_OF, settings=settings)
    assert [item.title for item in chosen] == ["Halaman utama", "Terkait 3", "Terkait 4"]
    assert provider.related(items[1], before=SEED_AS_OF, settings=settings) == ["engine"]


def test_english_digest(write_config: WriteConfig, store: Store) -> None:
    store.upsert([make_article(1, related=(RelatedLink("Other", "https://e.x/o", "S."),))])
    config = digest_config(
        write_config, locale="en", subject="Morning news, {date}", related={"per_item": 1}
    )
    issue = _prepare(config, store)
    page, text = issue.html_for(RECIPIENT), issue.text_for(RECIPIENT)
    assert issue.subject == "Morning news, 1 May 2024"
    assert "Read more" in page and "Related news" in page and "Hello, Budi Santoso!" in text
    assert "Wednesday, 1 May 2024 11:00 WIB" in text
    assert "Baca" not in page and 'lang="en"' in page


def test_text_wrapping_keeps_urls_and_reduplicated_words_whole() -> None:
    text = "kata " * 13 + "diam-diam https://kabar.example.id/" + "a" * 80 + " akhir"
    wrapped = wrap(text, 72, indent="  ")
    assert "diam-diam" in wrapped  # Jinja's wordwrap would cut it after "diam-"
    assert "https://kabar.example.id/" + "a" * 80 in wrapped.split("\n")[-2]
    assert all(line.startswith("  ") for line in wrapped.split("\n")[1:])


def test_the_engine_is_asked_to_leave_out_the_issues_own_items_and_those_shown(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([make_article(n) for n in range(1, 4)])
    related = _related_items(3)
    issue = _prepare(digest_config(write_config), store, related)
    own = [store.get(article_id) for article_id in issue.article_ids]
    own_urls = frozenset(article.url for article in own if article is not None)
    assert len(own_urls) == 3
    shown = [frozenset(item.url for item in card.related) for card in issue.view.cards]
    assert related.excluded == [own_urls, own_urls | shown[0], own_urls | shown[0] | shown[1]]


def test_no_related_item_shows_twice_in_an_issue_nor_a_card_of_it(
    write_config: WriteConfig, store: Store
) -> None:
    store.upsert([make_article(n) for n in range(1, 4)])
    card_url = make_article(2).url
    shared = [
        PublisherLink(title=f"Terkait {n}", url=f"https://kabar.example.id/t/{n}", summary="",
                      published=SEED_AS_OF - timedelta(hours=8), article_id=None)
        for n in range(7)
    ]  # fmt: skip
    as_card = PublisherLink(title="Kartu", url=card_url, summary="", published=None,
                            article_id=None)  # fmt: skip
    # A provider that ignores `exclude`: the same list under every card.
    related = FakeRelated(lambda article: [as_card, *shared])
    issue = _prepare(digest_config(write_config), store, related)
    blocks = [[item.url for item in card.related] for card in issue.view.cards]
    assert blocks == [[s.url for s in shared[:3]], [s.url for s in shared[3:6]], []]
    # The last card would get one item: fewer than per_item, so no block ("3 or nothing"
    # is the provider's rule too once the issue has taken the rest).
