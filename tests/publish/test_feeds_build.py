"""Building the seed's feeds: golden files, what each item carries, determinism, stable
ids, RFC 5005 archives. Runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from kabar.config import Config
from kabar.model import Article, article_id
from kabar.publish.feeds import BuildReport, build_feeds
from kabar.publish.storage import FeedStorage
from kabar.render.document import rfc822, rfc3339
from kabar.store import Store

from ..support.feeds_checks import (
    NS,
    RFC822,
    RFC3339,
    atom_errors,
    feed_config,
    ingest_seed,
    json_feed_errors,
    read_feed,
    tree,
)
from ..support.golden import assert_golden
from ..support.project import WriteConfig


@pytest.fixture
def config(write_config: WriteConfig) -> Config:
    return feed_config(write_config)


@pytest.fixture
def seeded(config: Config, store: Store) -> Store:
    ingest_seed(config, store)
    return store


def build(config: Config, store: Store, folder: Path, **options: Any) -> BuildReport:
    return build_feeds(config, store, FeedStorage(str(folder)), ping=False, **options)


def test_seed_feeds_match_the_golden_files(config: Config, seeded: Store, tmp_path: Path) -> None:
    build(config, seeded, tmp_path / "out")
    # .kabar/ holds build state, whose fingerprint covers the renderer's own source.
    built = {k: v for k, v in tree(tmp_path / "out").items() if not k.startswith(".kabar/")}
    assert_golden("feeds", built)


def test_every_feed_validates_and_round_trips(
    config: Config, seeded: Store, tmp_path: Path
) -> None:
    build(config, seeded, tmp_path)
    articles = {a.guid: a for a in seeded.articles()}
    feeds = [p for p in tree(tmp_path) if p.endswith((".xml", ".json")) and not p.startswith(".")]
    assert len(feeds) == 3 + 2 * 3 + 2  # semua, its two archive pages, rubrik/dunia
    for name in feeds:
        data = (tmp_path / name).read_bytes()
        if name.endswith(".json"):
            assert json_feed_errors(data) == [], name
            items = json.loads(data)["items"]
            for item in items:
                article = articles[item["id"]]
                assert (item["title"], item["url"]) == (article.title, article.url)
                assert item["date_published"] == rfc3339(article.published)
            continue
        if name.endswith(".atom.xml"):
            assert atom_errors(data) == "", name
        media_type = "application/atom+xml" if "atom" in name else "application/rss+xml"
        for entry in read_feed(data, media_type).entries:
            article = articles[entry.id]  # RSS guid and Atom id are the article's guid
            assert (entry.title, entry.link) == (article.title, article.url)
            assert entry.published_parsed[:6] == article.published.utctimetuple()[:6]


def test_items_carry_everything_a_reader_needs(
    config: Config, seeded: Store, tmp_path: Path
) -> None:
    build(config, seeded, tmp_path)
    rss = etree.parse(str(tmp_path / "semua.rss.xml")).getroot()
    channel = rss.find("channel")
    assert channel.findtext("language") == "id"
    assert channel.findtext("link") == "https://kabar.example.id"
    links = {link.get("rel"): link.get("href") for link in channel.findall("atom:link", NS)}
    assert links["self"] == "https://kabar.example.id/feeds/semua.rss.xml"
    assert links["hub"] == "https://hub.example.org/"
    assert links["prev-archive"] == "https://kabar.example.id/feeds/semua/archive/2.rss.xml"
    newest = next(seeded.articles(limit=1))
    assert channel.findtext("lastBuildDate") == rfc822(newest.updated)
    for item in channel.findall("item"):
        assert item.findtext("title") and item.findtext("link")
        assert item.findtext("description") and item.findtext("content:encoded", namespaces=NS)
        assert RFC822.match(str(item.findtext("pubDate")))
        assert item.findtext("pubDate").endswith("+0700")
        assert [c.text for c in item.findall("category")] == ["Dunia"]
        guid = item.find("guid")
        assert guid.get("isPermaLink") == str(guid.text == item.findtext("link")).lower()
    main = next(a for a in seeded.articles() if a.authors)  # the oldest: see rubrik/dunia
    section = etree.parse(str(tmp_path / "rubrik" / "dunia.rss.xml")).getroot()
    item = next(i for i in section.iter("item") if i.findtext("guid") == main.guid)
    assert [c.text for c in item.findall("dc:creator", NS)] == ["ISTMAN MP"]

    atom = etree.parse(str(tmp_path / "semua.atom.xml")).getroot()
    assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == "id"
    rels = {(link.get("rel"), link.get("type")) for link in atom.findall("atom:link", NS)}
    assert {("self", "application/atom+xml"), ("alternate", "text/html"), ("hub", None)} <= rels
    assert atom.findtext("atom:updated", namespaces=NS) == rfc3339(newest.updated)
    for entry in atom.findall("atom:entry", NS):
        assert entry.find("atom:content", NS).get("type") == "html"
        assert entry.findtext("atom:summary", namespaces=NS)
        for name in ("published", "updated"):
            assert RFC3339.match(str(entry.findtext(f"atom:{name}", namespaces=NS)))

    feed = json.loads((tmp_path / "semua.json").read_bytes())
    assert feed["language"] == "id"
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example.org/"}]
    assert feed["next_url"] == "https://kabar.example.id/feeds/semua/archive/2.json"
    assert all(item["content_html"] and item["summary"] for item in feed["items"])


def test_the_same_store_gives_the_same_bytes(config: Config, seeded: Store, tmp_path: Path) -> None:
    build(config, seeded, tmp_path / "a")
    build(config, seeded, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    times = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}
    again = build(config, seeded, tmp_path / "a", force=True)
    assert again.written == [] and again.skipped == 0
    assert times == {p: p.stat().st_mtime_ns for p in times}
    assert build(config, seeded, tmp_path / "a").skipped == again.documents


def test_an_edited_article_keeps_its_id(config: Config, seeded: Store, tmp_path: Path) -> None:
    build(config, seeded, tmp_path)
    article = next(seeded.articles(limit=1))
    seeded.upsert(
        [
            article.with_changes(
                title="Judul yang disunting", updated=article.updated + timedelta(hours=1)
            )
        ]
    )
    report = build(config, seeded, tmp_path)
    assert set(report.written) >= {"semua.rss.xml", "semua.atom.xml", "semua.json"}
    for name, media_type in (
        ("semua.rss.xml", "application/rss+xml"),
        ("semua.atom.xml", "application/atom+xml"),
    ):
        entries = read_feed((tmp_path / name).read_bytes(), media_type).entries
        edited = next(e for e in entries if e.title == "Judul yang disunting")
        assert edited.id == article.guid
    items = json.loads((tmp_path / "semua.json").read_bytes())["items"]
    assert next(i for i in items if i["title"] == "Judul yang disunting")["id"] == article.guid


def _archive_links(path: Path) -> dict[str, str]:
    root = etree.parse(str(path)).getroot()
    return {link.get("rel"): link.get("href") for link in root.findall("atom:link", NS)}


def _atom_ids(path: Path) -> list[str]:
    root = etree.parse(str(path)).getroot()
    return [str(e.findtext("atom:id", namespaces=NS)) for e in root.findall("atom:entry", NS)]


def test_history_goes_to_archive_pages_that_never_change(
    config: Config, seeded: Store, tmp_path: Path
) -> None:
    report = build(config, seeded, tmp_path)
    assert report.archive_pages == 2
    archive = tmp_path / "semua" / "archive"
    oldest_first = sorted(seeded.articles(), key=lambda a: (a.published, a.id))
    assert _atom_ids(archive / "1.atom.xml") == [a.guid for a in oldest_first[:4]][::-1]
    assert _atom_ids(archive / "2.atom.xml") == [a.guid for a in oldest_first[4:8]][::-1]
    page_1 = etree.parse(str(archive / "1.atom.xml")).getroot()
    assert page_1.find("fh:archive", NS) is not None
    assert "prev-archive" not in _archive_links(archive / "1.atom.xml")
    assert _archive_links(archive / "2.atom.xml") == {
        "self": "https://kabar.example.id/feeds/semua/archive/2.atom.xml",
        "prev-archive": "https://kabar.example.id/feeds/semua/archive/1.atom.xml",
        "current": "https://kabar.example.id/feeds/semua.atom.xml",
        "alternate": "https://kabar.example.id",
    }
    full_pages = {p: p.read_bytes() for p in archive.iterdir()}

    # Four newer articles fill page 3; an edit to an archived article changes nothing.
    newest = oldest_first[-1]
    newer = [
        Article(
            id=article_id("seeds", f"https://kabar.example.id/read/baru-{n}"),
            guid=f"https://kabar.example.id/read/baru-{n}",
            source="seeds",
            url=f"https://kabar.example.id/read/baru-{n}/judul",
            title=f"Berita baru {n}",
            published=newest.published + timedelta(minutes=n),
            updated=newest.published + timedelta(minutes=n),
            summary="Ringkasan",
            body_html="<p>Isi</p>",
            section="Dunia",
        )
        for n in range(1, 5)
    ]
    seeded.upsert([*newer, oldest_first[0].with_changes(title="Disunting")])
    report = build(config, seeded, tmp_path)
    assert report.archive_pages == 1
    assert not any(
        path.startswith(("semua/archive/1.", "semua/archive/2.")) for path in report.written
    )
    assert {p: p.read_bytes() for p in full_pages} == full_pages
    assert _archive_links(tmp_path / "semua.atom.xml")["prev-archive"].endswith(
        "/archive/3.atom.xml"
    )
    assert (
        _atom_ids(archive / "3.atom.xml") == [a.guid for a in (*oldest_first[8:], *newer)][:4][::-1]
    )


def test_dry_run_writes_nothing(config: Config, seeded: Store, tmp_path: Path) -> None:
    report = build(config, seeded, tmp_path / "out", dry_run=True)
    assert "semua.rss.xml" in report.written and report.archive_pages == 2
    assert not (tmp_path / "out").exists()


def test_a_feed_file_removed_from_storage_is_written_again(
    config: Config, seeded: Store, tmp_path: Path
) -> None:
    build(config, seeded, tmp_path)
    (tmp_path / "semua.json").unlink()
    report = build(config, seeded, tmp_path)
    assert report.written == ["semua.json"] and report.skipped == 1
