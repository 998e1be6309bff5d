"""The feed index page: every feed with its formats, and an autodiscovery
`<link rel="alternate">` for each in the head (rssboard.org/rss-autodiscovery)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from kabar.render.document import MEDIA_TYPES, Format, xml_safe

FORMAT_NAMES: dict[Format, str] = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
_HEADINGS = {"id": "Umpan berita", "en": "Feeds"}


@dataclass(frozen=True)
class IndexEntry:
    title: str
    urls: dict[Format, str]


def render_index(site_title: str, language: str, entries: Sequence[IndexEntry]) -> bytes:
    heading = xml_safe(f"{site_title}: {_HEADINGS.get(language, _HEADINGS['en'])}")
    entries = [IndexEntry(xml_safe(entry.title), entry.urls) for entry in entries]
    head = [
        f'<link rel="alternate" type="{MEDIA_TYPES[fmt]}" title="{escape(entry.title)} '
        f'({FORMAT_NAMES[fmt]})" href="{escape(url)}">'
        for entry in entries
        for fmt, url in entry.urls.items()
    ]
    rows = [
        f"<li>{escape(entry.title)}: "
        + " · ".join(
            f'<a href="{escape(url)}" type="{MEDIA_TYPES[fmt]}">{FORMAT_NAMES[fmt]}</a>'
            for fmt, url in entry.urls.items()
        )
        + "</li>"
        for entry in entries
    ]
    page = "\n".join(
        [
            "<!doctype html>",
            f'<html lang="{escape(language)}">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(heading)}</title>",
            *head,
            "</head>",
            "<body>",
            f"<h1>{escape(heading)}</h1>",
            "<ul>",
            *rows,
            "</ul>",
            "</body>",
            "</html>",
            "",
        ]
    )
    return page.encode()
