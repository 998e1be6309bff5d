"""Each feedgen 1.0.0 defect kabar works around, pinned: rendered with its workaround
turned off the defect shows, and with every workaround on it does not."""

from __future__ import annotations

import locale
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from kabar.render.document import rfc822, rfc3339
from kabar.render.feeds import render
from kabar.render.rss_atom import ALL_FIXES, FEEDGEN_FIXES

from ..support.feeds_checks import NS, atom_errors, read_feed, sample_document

DOC = sample_document()
HUB = "https://hub.example.org/"


def without(fix: str) -> frozenset[str]:
    assert fix in FEEDGEN_FIXES
    return ALL_FIXES - {fix}


def xml(data: bytes) -> Any:
    return etree.fromstring(data)


def test_every_listed_defect_has_a_test_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    assert all(f'without("{fix}")' in source for fix in FEEDGEN_FIXES)


def test_atom_entry_links_keep_rel_type_and_length() -> None:
    def entry_links(fixes: frozenset[str]) -> list[dict[str, str]]:
        entry = xml(render(DOC, "atom", fixes=fixes)).find("atom:entry", NS)
        return [dict(link.attrib) for link in entry.findall("atom:link", NS)]

    broken = entry_links(without("atom-entry-link-attributes"))
    assert [link.get("rel") for link in broken] == [None, None]  # two alternates
    fixed = entry_links(ALL_FIXES)
    assert fixed == [
        {"href": DOC.items[0].url, "rel": "alternate", "type": "text/html"},
        {
            "href": DOC.items[0].enclosures[0].url,
            "rel": "enclosure",
            "type": "audio/mpeg",
            "length": "12345",
        },
    ]
    entries = read_feed(render(DOC, "atom"), "application/atom+xml").entries
    assert entries[0].enclosures[0].href == DOC.items[0].enclosures[0].url


def test_rss_channel_link_is_the_site_not_the_last_link() -> None:
    def channel_link(fixes: frozenset[str]) -> str:
        return str(xml(render(DOC, "rss", fixes=fixes)).findtext("channel/link"))

    assert channel_link(without("rss-channel-link")) != DOC.home_url
    assert channel_link(ALL_FIXES) == DOC.home_url


def test_rss_keeps_the_hub_and_archive_links() -> None:
    def atom_links(fixes: frozenset[str]) -> dict[str, str]:
        channel = xml(render(DOC, "rss", fixes=fixes)).find("channel")
        return {link.get("rel"): link.get("href") for link in channel.findall("atom:link", NS)}

    assert set(atom_links(without("rss-hub-link"))) == {"self"}
    assert atom_links(ALL_FIXES) == {
        "self": DOC.self_urls["rss"],
        "hub": HUB,
        "prev-archive": DOC.prev_archive["rss"],
    }


def test_atom_content_type_is_html_not_cdata() -> None:
    broken = render(DOC, "atom", fixes=without("atom-content-type"))
    assert xml(broken).find("atom:entry/atom:content", NS).get("type") == "CDATA"
    assert atom_errors(broken)
    fixed = render(DOC, "atom")
    assert xml(fixed).find("atom:entry/atom:content", NS).get("type") == "html"
    assert atom_errors(fixed) == ""


def test_summary_does_not_replace_the_atom_content() -> None:
    def content(fixes: frozenset[str]) -> str:
        entry = xml(render(DOC, "atom", fixes=fixes)).find("atom:entry", NS)
        return str(entry.findtext("atom:content", namespaces=NS))

    assert content(without("description-replaces-content")).startswith("Ringkasan")
    assert content(ALL_FIXES) == DOC.items[0].content_html
    item = xml(render(DOC, "rss")).find("channel/item")
    assert item.findtext("description") == "Ringkasan berita 3: harga naik &amp; turun"
    assert item.findtext("content:encoded", namespaces=NS) == DOC.items[0].content_html


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_media_content_is_not_wrapped_in_a_group(fmt: str) -> None:
    def media(fixes: frozenset[str]) -> Any:
        root = xml(render(DOC, fmt, fixes=fixes))
        return root.find("channel/item" if fmt == "rss" else "atom:entry", NS)

    assert media(without("media-group")).find("media:group/media:content", NS) is not None
    entry = media(ALL_FIXES)
    assert entry.find("media:group", NS) is None
    content = entry.find("media:content", NS)
    assert content.attrib == {"url": DOC.items[0].image_url, "medium": "image"}
    assert content.findtext("media:description", namespaces=NS) == "Foto 3"


def test_entries_keep_newest_first_order() -> None:
    def guids(fixes: frozenset[str]) -> list[str]:
        return [g.text for g in xml(render(DOC, "rss", fixes=fixes)).iter("guid")]

    expected = [item.guid for item in DOC.items]
    assert guids(without("entry-order")) == expected[::-1]
    assert guids(ALL_FIXES) == expected


def test_build_dates_come_from_the_newest_entry_not_now() -> None:
    broken = render(DOC, "atom", fixes=without("build-date-now"))
    now_year = str(datetime.now(UTC).year)
    assert xml(broken).findtext("atom:updated", namespaces=NS).startswith(now_year)
    assert render(DOC, "atom", fixes=without("build-date-now")) != broken  # never the same
    assert rfc822(DOC.updated) not in render(DOC, "rss", fixes=without("build-date-now")).decode()

    assert xml(render(DOC, "atom")).findtext("atom:updated", namespaces=NS) == rfc3339(
        DOC.items[0].updated
    )
    assert xml(render(DOC, "rss")).findtext("channel/lastBuildDate") == (
        "Sun, 11 Jul 2021 13:30:00 +0700"
    )
    assert render(DOC, "rss") == render(DOC, "rss")
    assert render(DOC, "atom") == render(DOC, "atom")


def test_rss_dates_never_touch_the_process_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    real = locale.setlocale

    def recording(*args: Any) -> str:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(locale, "setlocale", recording)
    render(DOC, "rss", fixes=without("locale-date-format"))
    assert calls, "feedgen's formatter switches the locale"
    calls.clear()
    rss = xml(render(DOC, "rss"))
    assert calls == []
    assert rss.findtext("channel/item/pubDate") == "Sun, 11 Jul 2021 13:00:00 +0700"


def test_rss_names_authors_without_an_email() -> None:
    def creators(fixes: frozenset[str]) -> list[str]:
        item = xml(render(DOC, "rss", fixes=fixes)).find("channel/item")
        return [e.text for e in item.findall("dc:creator", NS) + item.findall("author")]

    assert creators(without("rss-author-email")) == []
    assert creators(ALL_FIXES) == ["Istman MP"]
    entry = read_feed(render(DOC, "rss"), "application/rss+xml").entries[0]
    assert entry.author == "Istman MP"
