"""The web archive of sent issues: the issue page, the index, and the manifest behind it."""

from __future__ import annotations

import json
from datetime import timedelta

from lxml import html as lxml_html

from kabar.digest import load_prepared, prepare_issue
from kabar.publish.archive import publish_archive
from kabar.render.archive import ArchiveEntry, archive_pages, read_manifest
from kabar.store import Store

from ..support.digest import RECIPIENT, digest_config, ingest_seed, make_article, seed_issue
from ..support.feeds_checks import atom_errors, read_feed
from ..support.project import SEED_AS_OF, WriteConfig


def test_the_issue_page_shows_what_was_sent(write_config: WriteConfig, store: Store) -> None:
    # Seven cards: three items the seed page lists stay out, and the first card shows them.
    config = digest_config(write_config, window="since_last", max_items=7)
    ingest_seed(config, store)
    issue = seed_issue(config, store)
    pages = archive_pages(config, issue.view)
    assert sorted(pages) == [
        "archive/harian/harian-pembaca-2024-05-01.html",
        "archive/harian/index.html",
        "archive/harian/issues.json",
    ]
    page = lxml_html.fromstring(pages["archive/harian/harian-pembaca-2024-05-01.html"])
    titles = [" ".join(h.text_content().split()) for h in page.xpath("//article/h2")]
    assert titles == [card.title for card in issue.view.cards]
    assert page.xpath("//section[@class='related']/h3")[0].text == "Berita terkait"
    related = [
        " ".join(s.text_content().split()) for s in page.xpath("//section[@class='related']")
    ]
    assert len(related) == 1 and related[0].count("30 April 2024 12:00 WIB") == 3
    # The 2021 page that lists them is no item: a borrowed grouping keeps to the window.
    assert "Xi Jinping" not in related[0]
    assert page.xpath("//html/@lang") == ["id"]
    # No subscriber's link or name reaches the public page.
    text = page.text_content()
    assert "TOKEN" not in text and "Budi" not in text and "Berhenti" not in text
    # The email's "view in browser" link points at this page.
    assert issue.view.archive_url.endswith("/archive/harian/harian-pembaca-2024-05-01.html")
    assert issue.view.archive_url in issue.html_for(RECIPIENT)


def test_the_index_lists_issues_newest_first_and_replaces_a_resent_key(
    write_config: WriteConfig, store: Store
) -> None:
    config = digest_config(write_config, window="1d")
    store.upsert([make_article(n, title=f"Judul <{n}>") for n in range(1, 4)])
    written: dict[str, bytes] = {}
    for days in (2, 0, 1, 0):  # issue keys out of order, and one sent twice
        moment = SEED_AS_OF - timedelta(days=days)
        hour_before = moment - timedelta(hours=1)
        store.upsert([make_article(10 + days, published=hour_before, updated=hour_before)])
        issue = prepare_issue(
            config, store, config.digest("harian"),
            issue_key=f"harian:pembaca:{moment.date()}", issue_time=moment,
        )  # fmt: skip
        assert issue is not None
        issue = load_prepared(config, json.loads(json.dumps(issue.dump())))
        entries = publish_archive(config, issue.view, read=written.get, write=written.__setitem__)
    days = ["2024-05-01", "2024-04-30", "2024-04-29"]
    assert [entry.issue_key for entry in entries] == [f"harian:pembaca:{day}" for day in days]
    assert read_manifest(written["archive/harian/issues.json"]) == entries
    index = lxml_html.fromstring(written["archive/harian/index.html"])
    links = index.xpath("//li/a/@href")
    assert links == [f"harian-pembaca-{day}.html" for day in days]
    assert "Arsip pembaca" in index.xpath("//h1")[0].text
    assert "berita" in index.xpath("//li/div")[0].text_content()
    assert len([p for p in written if p.endswith(".html")]) == 4  # 3 issues + index
    # The "issues" feed lists the same issues, newest first, linking to their pages.
    atom = written["archive/harian/issues.atom.xml"]
    assert atom_errors(atom) == ""
    for name, media_type in (
        ("rss.xml", "application/rss+xml"),
        ("atom.xml", "application/atom+xml"),
    ):
        feed = read_feed(written[f"archive/harian/issues.{name}"], media_type)
        assert feed.bozo == 0
        assert [e.link for e in feed.entries] == [entry.url for entry in entries]
        assert [e.title for e in feed.entries] == [entry.subject for entry in entries]
        assert feed.entries[0].link.startswith("https://kabar.example.id/feeds/archive/harian/")


def test_archive_entries_round_trip(write_config: WriteConfig, store: Store) -> None:
    config = digest_config(write_config)
    store.upsert([make_article(1)])
    issue = prepare_issue(config, store, config.digest("harian"),
                          issue_key="harian:pembaca:2024-05-01", issue_time=SEED_AS_OF)  # fmt: skip
    assert issue is not None
    entry = ArchiveEntry.of(issue.view)
    assert ArchiveEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    assert entry.articles == 1 and entry.page == "harian-pembaca-2024-05-01.html"
