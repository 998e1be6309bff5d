"""The feed renderers on their own: ids, dates, languages, empty feeds, bad characters."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from lxml import etree

from kabar.render.document import EPOCH, rfc822, xml_safe
from kabar.render.feeds import atom_id_for, render

from ..support.feeds_checks import NS, atom_errors, json_feed_errors, read_feed, sample_document


def test_atom_ids_are_the_guid_when_it_is_an_iri_else_a_tag_uri() -> None:
    site = "https://kabar.example.id"
    assert atom_id_for("https://kabar.example.id/read/1", source="s", site_url=site) == (
        "https://kabar.example.id/read/1"
    )
    assert atom_id_for("urn:uuid:1234", source="s", site_url=site) == "urn:uuid:1234"
    assert atom_id_for("123456", source="wire", site_url=site) == (
        "tag:kabar.example.id,2024:wire/123456"
    )
    assert atom_id_for("a b/ü", source="wire", site_url=site) == (
        "tag:kabar.example.id,2024:wire/a%20b%2F%C3%BC"
    )


def test_rss_dates_keep_the_article_offset_in_english() -> None:
    assert rfc822(datetime(2021, 7, 11, 17, 0, tzinfo=timezone(timedelta(hours=7)))) == (
        "Sun, 11 Jul 2021 17:00:00 +0700"
    )
    assert rfc822(datetime(2024, 5, 1, 8, 0, 0, 999, tzinfo=timezone(timedelta(hours=-5)))) == (
        "Wed, 01 May 2024 08:00:00 -0500"
    )


def test_an_item_in_another_language_says_so() -> None:
    doc = sample_document()
    doc = replace(doc, items=(replace(doc.items[0], language="en"), *doc.items[1:]))
    entries = etree.fromstring(render(doc, "atom")).findall("atom:entry", NS)
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    assert [e.get(lang) for e in entries] == ["en", None, None]
    items = json.loads(render(doc, "json"))["items"]
    assert [item.get("language") for item in items] == ["en", None, None]


def test_a_feed_with_no_items_is_valid_and_dated_the_epoch() -> None:
    doc = sample_document(items=())
    assert doc.updated == EPOCH
    assert atom_errors(render(doc, "atom")) == ""
    assert json_feed_errors(render(doc, "json")) == []
    assert read_feed(render(doc, "rss"), "application/rss+xml").feed.updated == (
        "Thu, 01 Jan 1970 00:00:00 +0000"
    )


def test_characters_xml_forbids_are_dropped_everywhere() -> None:
    assert xml_safe("a\x00b\x1bc\ud800d\ufffee\x7ff\tg\nh😀") == "abcdef\tg\nh😀"
    doc = sample_document(title="Semua \x01berita")
    doc = replace(doc, items=(replace(doc.items[0], title="Judul\x0c", guid="x\x02y"),))
    for fmt in ("rss", "atom", "json"):
        data = render(doc, fmt)
        assert b"\x01" not in data and b"\x0c" not in data and b"\x02" not in data
        assert b"Semua berita" in data and b"Judul" in data
