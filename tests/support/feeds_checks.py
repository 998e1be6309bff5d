"""Checks the feed tests share: what validators and readers make of a feed."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
from lxml import etree

from kabar import config as config_module
from kabar.config import Config
from kabar.ingest import ingest_source
from kabar.render.document import Enclosure, FeedDocument, FeedItem
from kabar.store import Store

from .project import DATA, SEED_AS_OF

WIB = timezone(timedelta(hours=7))
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "fh": "http://purl.org/syndication/history/1.0",
}


@cache
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(file=str(DATA / "atom.rng"))


@cache
def json_feed_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "jsonfeed-1.1.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def atom_errors(data: bytes) -> str:
    """'' when the Atom document validates against the RFC 4287 RELAX NG schema."""
    schema = atom_schema()
    return "" if schema.validate(etree.fromstring(data)) else str(schema.error_log)


def json_feed_errors(data: bytes) -> list[str]:
    """Schema errors, plus RFC 3339 checks that don't depend on a format plugin."""
    feed = json.loads(data)
    errors = [e.message for e in json_feed_validator().iter_errors(feed)]
    for item in feed.get("items", []):
        for name in ("date_published", "date_modified"):
            if name in item and not RFC3339.match(item[name]):
                errors.append(f"{item.get('id')}: {name} {item[name]!r} is not RFC 3339")
    return errors


def read_feed(data: bytes, media_type: str) -> Any:
    """What a feed reader sees; fails on anything feedparser calls malformed."""
    parsed = feedparser.parse(data, response_headers={"content-type": media_type})
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def sample_document(**changes: Any) -> FeedDocument:
    """Three items, newest first, using every field the renderers know."""
    items = tuple(
        FeedItem(
            guid=f"https://kabar.example.id/read/{n}",
            atom_id=f"https://kabar.example.id/read/{n}",
            url=f"https://kabar.example.id/read/{n}/judul-{n}",
            title=f"Judul berita {n}",
            published=datetime(2021, 7, 11, 10 + n, 0, tzinfo=WIB),
            updated=datetime(2021, 7, 11, 10 + n, 30, tzinfo=WIB),
            summary=f"Ringkasan berita {n}: harga naik & turun",
            content_html=f"<p>Isi berita {n}, <b>lengkap</b>.</p>",
            authors=("Istman MP",),
            categories=("Dunia", "Korea Utara"),
            image_url=f"https://kabar.example.id/img/{n}.jpg",
            image_alt=f"Foto {n}",
            enclosures=(Enclosure(f"https://kabar.example.id/audio/{n}.mp3", 12345, "audio/mpeg"),),
        )
        for n in (3, 2, 1)
    )
    values: dict[str, Any] = {
        "atom_id": "tag:kabar.example.id,2024:feed/semua",
        "title": "Semua berita",
        "description": "Berita terbaru",
        "language": "id",
        "home_url": "https://kabar.example.id",
        "self_urls": {
            "rss": "https://kabar.example.id/feeds/semua.rss.xml",
            "atom": "https://kabar.example.id/feeds/semua.atom.xml",
            "json": "https://kabar.example.id/feeds/semua.json",
        },
        "items": items,
        "author": "Kabar Contoh",
        "hub_url": "https://hub.example.org/",
        "prev_archive": {
            "rss": "https://kabar.example.id/feeds/semua/archive/2.rss.xml",
            "atom": "https://kabar.example.id/feeds/semua/archive/2.atom.xml",
            "json": "https://kabar.example.id/feeds/semua/archive/2.json",
        },
    }
    values.update(changes)
    return FeedDocument(**values)


# --- the seed, configured for feeds ------------------------------------------------------

FEED_SETTINGS: dict[str, Any] = {
    "sources": [
        {
            "id": "seeds",
            "kind": "pages",
            "path": "seeds/",
            "base_url": "https://kabar.example.id/read",
            "section": "Dunia",
        }
    ],
    "feeds": [
        {
            "id": "semua",
            "title": "Semua berita",
            "description": "Semua berita terbaru dari Kabar Contoh",
            "limit": 4,  # the seed's 11 articles fill two archive pages
        },
        {
            "id": "rubrik",
            "title": "Berita per rubrik",
            "split_by": "section",
            "formats": ["rss", "atom"],
            "archive": False,
        },
    ],
    "web": {"base_url": "https://kabar.example.id", "websub_hub": "https://hub.example.org/"},
}


def feed_config(write_config: Any, **changes: Any) -> Config:
    return config_module.load(write_config(**{**FEED_SETTINGS, **changes}))


def ingest_seed(config: Config, store: Store) -> None:
    report = ingest_source(config, store, config.sources[0], as_of=SEED_AS_OF, now=SEED_AS_OF)
    assert report.stored.inserted == 11, report.describe()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
