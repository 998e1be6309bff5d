"""A generated 5,000-article store full of hostile content: markup, `&`, `]]>`, control
characters, emoji, right-to-left text, template syntax and 2,000-character titles. Every
feed must still validate, and what readers see must be what was stored.

The articles go into the store directly, not through ingest, so the control characters
ingest would have stripped reach the renderer, which must strip them itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kabar import config as config_module
from kabar.config import Config
from kabar.model import Article, article_id
from kabar.publish.feeds import BuildReport, build_feeds
from kabar.publish.storage import FeedStorage
from kabar.render.document import xml_safe
from kabar.render.feeds import atom_id_for
from kabar.store import Store
from kabar.text import sanitize_html

from ..support.feeds_checks import atom_errors, json_feed_errors, read_feed, tree
from ..support.project import BASE_CONFIG

COUNT = 5000
HOSTILE = [
    "<script>alert('judul')</script> & <b>tebal</b>",
    "Harga naik ]]> lalu turun ]]&gt;",
    "Kontrol\x00\x01\x08\x0b\x0c\x1b\x7f\x9f karakter",
    "Emoji 😀🇮🇩👩🏽‍💻 berita",
    "مرحبا بالعالم \u202eعكس\u202c עברית",
    "{{ 7*7 }} {% raw %} ${7*7} <%= 7*7 %>",
]
SECTIONS = ["Dunia", "Ekonomi & Bisnis", "<Teknologi>", "عربي", "Olahraga 😀"]
TAGS = ["tag & <x>", "😀"]
OFFSETS = [
    timezone(timedelta(hours=h, minutes=m)) for h, m in ((7, 0), (8, 0), (9, 0), (-5, 0), (5, 30))
]
START = datetime(2024, 1, 1, tzinfo=UTC)


def hostile_article(n: int) -> Article:
    title = f"{HOSTILE[n % len(HOSTILE)]} #{n}"
    if n % 97 == 0:
        title = (f"Judul sangat panjang {n} " + "kata " * 400)[:2000]
    guid = f"https://kabar.example.id/read/{n}" if n % 2 else f"cms:{n} ü/ä?"
    if n % 3 == 0:
        guid = f"artikel-{n} <&>"  # not an IRI: Atom gets a tag: URI
    published = (START + timedelta(minutes=17 * n)).astimezone(OFFSETS[n % len(OFFSETS)])
    body = sanitize_html(
        f"<p onclick='x()'>Isi {n} &amp; <script>alert(1)</script> ]]&gt; {{{{ 7*7 }}}} "
        f"😀 مرحبا</p><p>dua <a href='javascript:alert(1)'>tautan</a></p>"
    )
    return Article(
        id=article_id("hostile", guid),
        guid=guid,
        source="hostile",
        url=f"https://kabar.example.id/read/{n}/judul?ref=feed&n={n}",
        title=title,
        published=published,
        updated=published + timedelta(minutes=n % 5),
        summary=f"Ringkasan \x02 {HOSTILE[(n + 1) % len(HOSTILE)]}",
        body_html=body + "\x01",
        authors=(f"Penulis <b>&</b> {n % 7}\x03", "نويسنده"),
        section=SECTIONS[n % len(SECTIONS)],
        tags=(TAGS[n % 2],),
        image_url=f"https://kabar.example.id/img/{n}.jpg?w=640&h=360",
        image_alt=f'Foto "kutip" & <alt> \x04{n}',
        language="id",
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Store, Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "kabar.yaml"
    settings = {
        **BASE_CONFIG,
        "sources": [{"id": "hostile", "kind": "json", "path": "hostile.jsonl"}],
        "storage": {"database": "sqlite:///hostile.db", "feeds": "public/"},
        "feeds": [
            {"id": "semua", "title": 'Semua <berita> & "kutip" 😀', "limit": 50},
            {"id": "rubrik", "title": "Rubrik", "split_by": "section", "archive": False},
            {"id": "topik", "title": "Topik", "split_by": "tag", "archive": False},
        ],
        "web": {"base_url": "https://kabar.example.id", "websub_hub": "https://hub.example.org/"},
    }
    path.write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")  # YAML 1.2
    config = config_module.load(path)
    store = Store.open(config.database_url)
    store.upsert([hostile_article(n) for n in range(COUNT)], now=START)
    build_feeds(config, store, FeedStorage.from_config(config), ping=False)
    yield config, store, config.resolve("public")
    store.close()


def subscription_feeds(public: Path) -> list[str]:
    return sorted(
        name
        for name in tree(public)
        if "/archive/" not in name and name.endswith((".xml", ".json")) and not name.startswith(".")
    )


def checked_documents(public: Path) -> list[str]:
    archive = [
        f"semua/archive/{page}{suffix}"
        for page in (1, 50, 100)
        for suffix in (".rss.xml", ".atom.xml", ".json")
    ]
    return subscription_feeds(public) + archive


def test_the_store_makes_every_expected_document(hostile: tuple[Config, Store, Path]) -> None:
    _, store, public = hostile
    assert store.count() == COUNT
    names = set(tree(public))
    assert {f"semua/archive/{page}.atom.xml" for page in range(1, 101)} <= names
    assert "semua/archive/101.atom.xml" not in names
    assert len(subscription_feeds(public)) == 3 * (1 + len(SECTIONS) + len(TAGS))


@pytest.fixture(scope="module")
def parsed(hostile: tuple[Config, Store, Path]) -> dict[str, Any]:
    """Each checked document as feedparser (XML) or json (JSON Feed) reads it, validated
    on the way: RELAX NG for Atom, the JSON Feed 1.1 schema, and feedparser's bozo."""
    public, out = hostile[2], {}
    for name in checked_documents(public):
        data = (public / name).read_bytes()
        assert b"\x01" not in data and b"\x1b" not in data, name
        assert b"{{ 7*7 }}" in data, name
        if name.endswith(".json"):
            assert json_feed_errors(data) == [], name
            out[name] = json.loads(data)
            assert all("<script" not in item["content_html"] for item in out[name]["items"])
            continue
        if name.endswith(".atom.xml"):
            assert atom_errors(data) == "", name
        out[name] = read_feed(
            data, "application/atom+xml" if "atom" in name else "application/rss+xml"
        )
    return out


def test_every_document_is_valid(parsed: dict[str, Any]) -> None:
    assert len(parsed) == 3 * (1 + len(SECTIONS) + len(TAGS)) + 9


def test_titles_links_dates_and_ids_round_trip(
    hostile: tuple[Config, Store, Path], parsed: dict[str, Any]
) -> None:
    store = hostile[1]
    by_guid = {a.guid: a for a in store.articles()}
    by_atom_id = {
        atom_id_for(a.guid, source=a.source, site_url="https://kabar.example.id"): a
        for a in by_guid.values()
    }
    seen_long = False
    for name, document in parsed.items():
        if name.endswith(".json"):
            for item in document["items"]:
                article = by_guid[item["id"]]
                assert item["title"] == xml_safe(article.title)
                assert item["url"] == article.url
                assert item["date_published"] == article.published.isoformat()
                assert item["date_modified"] == article.updated.isoformat()
            continue
        atom = name.endswith(".atom.xml")
        assert len(document.entries) == 50 or name.startswith(("rubrik/", "topik/"))
        for entry in document.entries:
            article = (by_atom_id if atom else by_guid)[entry.id]
            assert entry.title == xml_safe(article.title)
            assert entry.link == article.url
            assert entry.published_parsed[:6] == article.published.utctimetuple()[:6]
            if atom:
                assert entry.updated_parsed[:6] == article.updated.utctimetuple()[:6]
            seen_long = seen_long or len(entry.title) == 2000
    assert seen_long


def test_the_same_store_gives_the_same_bytes(
    hostile: tuple[Config, Store, Path], tmp_path: Path
) -> None:
    config, store, public = hostile
    report: BuildReport = build_feeds(config, store, FeedStorage(str(tmp_path)), ping=False)
    assert report.archive_pages == 100
    assert tree(tmp_path) == tree(public)
