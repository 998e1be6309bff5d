"""Feed documents in their three formats: RSS 2.0 and Atom 1.0 (through feedgen, see
`kabar.render.rss_atom`) and JSON Feed 1.1.

A `FeedDocument` (in `kabar.render.document`) holds everything a format needs, already
decided: which items in which order, and which links. Rendering is deterministic: the
same document gives the same bytes, and no field ever defaults to the current time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

from kabar.model import Article
from kabar.render.document import (
    JSON_FEED_VERSION,
    FeedDocument,
    FeedItem,
    Format,
    is_xml_safe,
    rfc3339,
    xml_safe,
)
from kabar.text import paragraphs_to_html

# The date part of tag: URIs (RFC 4151) minted for guids that are not IRIs. It must
# never change once feeds are published, or every such entry would look new.
TAG_DATE = "2024"
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")

# --- building documents ----------------------------------------------------------------


def atom_id_for(guid: str, *, source: str, site_url: str) -> str:
    """The guid itself when it is an absolute IRI, else a tag: URI minted from it."""
    if _IRI.match(guid):
        return guid
    host = urlsplit(site_url).hostname or "localhost"
    return f"tag:{host},{TAG_DATE}:{quote(source, safe='')}/{quote(guid, safe='')}"


def item_from_article(article: Article, *, site_url: str) -> FeedItem:
    if article.body_html:
        content = article.body_html  # sanitised at ingest (kabar.text.sanitize_html)
    else:
        paragraphs = [part for part in article.body_text.split("\n\n") if part.strip()]
        content = paragraphs_to_html(paragraphs or [article.summary])
    categories = dict.fromkeys(c for c in (article.section, *article.tags) if c.strip())
    return FeedItem(
        guid=article.guid,
        atom_id=atom_id_for(article.guid, source=article.source, site_url=site_url),
        url=article.url,
        title=article.title,
        published=article.published.replace(microsecond=0),
        updated=max(article.updated, article.published).replace(microsecond=0),
        summary=article.summary,
        content_html=content,
        authors=tuple(a for a in article.authors if a.strip()),
        categories=tuple(categories),
        image_url=article.image_url,
        image_alt=article.image_alt,
        language=article.language,
    )


# --- rendering -------------------------------------------------------------------------


def render(doc: FeedDocument, fmt: Format, *, fixes: Collection[str] | None = None) -> bytes:
    """The document in one format. `fixes` selects feedgen workarounds (all by default;
    tests turn one off to show the defect it covers)."""
    return render_formats(doc, (fmt,), fixes=fixes)[fmt]


def render_formats(
    doc: FeedDocument, formats: Collection[Format], *, fixes: Collection[str] | None = None
) -> dict[Format, bytes]:
    from kabar.render.rss_atom import ALL_FIXES, render_rss_atom

    doc = _xml_safe_document(doc)
    chosen = ALL_FIXES if fixes is None else frozenset(fixes)
    xml = render_rss_atom(doc, [f for f in formats if f != "json"], chosen)
    return {fmt: render_json(doc) if fmt == "json" else xml[fmt] for fmt in formats}


def render_json(doc: FeedDocument) -> bytes:
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": doc.title,
        "home_page_url": doc.home_url,
        "feed_url": doc.self_urls["json"],
    }
    if doc.description:
        feed["description"] = doc.description
    if "json" in doc.prev_archive:
        feed["next_url"] = doc.prev_archive["json"]  # older items, as RFC 5005 prev-archive
    if doc.logo_url:
        feed["icon"] = doc.logo_url
    if doc.author:
        feed["authors"] = [{"name": doc.author}]
    feed["language"] = doc.language
    if doc.hub_url and not doc.is_archive:
        feed["hubs"] = [{"type": "WebSub", "url": doc.hub_url}]
    feed["items"] = [_json_item(item, doc.language) for item in doc.items]
    # Compact: json.dumps with an indent takes the pure-Python encoder, 10x slower.
    return (json.dumps(feed, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _json_item(item: FeedItem, feed_language: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.guid, "url": item.url, "title": item.title}
    if item.content_html:
        out["content_html"] = item.content_html
    else:
        out["content_text"] = item.summary or item.title
    if item.summary:
        out["summary"] = item.summary
    if item.image_url:
        out["image"] = item.image_url
    out["date_published"] = rfc3339(item.published)
    out["date_modified"] = rfc3339(item.updated)
    if item.authors:
        out["authors"] = [{"name": name} for name in item.authors]
    if item.categories:
        out["tags"] = list(item.categories)
    if item.language and item.language != feed_language:
        out["language"] = item.language
    if item.enclosures:
        out["attachments"] = [
            {"url": e.url, "mime_type": e.type, "size_in_bytes": e.length} for e in item.enclosures
        ]
    return out


def _xml_safe_document(doc: FeedDocument) -> FeedDocument:
    """Every text field without XML-invalid characters. Ingest strips them already;
    this keeps a document built by any other path renderable."""
    texts = (doc.title, doc.description, doc.author, *(_item_text(item) for item in doc.items))
    if is_xml_safe("\n".join(texts)):
        return doc
    items = tuple(
        replace(
            item,
            guid=xml_safe(item.guid),
            atom_id=xml_safe(item.atom_id),
            url=xml_safe(item.url),
            title=xml_safe(item.title),
            summary=xml_safe(item.summary),
            content_html=xml_safe(item.content_html),
            authors=tuple(xml_safe(a) for a in item.authors),
            categories=tuple(xml_safe(c) for c in item.categories),
            image_url=xml_safe(item.image_url),
            image_alt=xml_safe(item.image_alt),
        )
        for item in doc.items
    )
    return replace(
        doc,
        title=xml_safe(doc.title),
        description=xml_safe(doc.description),
        author=xml_safe(doc.author),
        items=items,
    )


def _item_text(item: FeedItem) -> str:
    return "\n".join(
        (
            item.guid, item.atom_id, item.url, item.title, item.summary, item.content_html,
            *item.authors, *item.categories, item.image_url, item.image_alt,
        )
    )  # fmt: skip
