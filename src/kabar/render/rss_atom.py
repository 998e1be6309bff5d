"""RSS 2.0 and Atom 1.0 through feedgen 1.0.0, with its defects worked around.

feedgen is unmaintained and pinned exactly (pyproject.toml), because the workarounds
depend on its internals: kabar's extensions edit the elements it writes, and its default
`lastBuildDate` is cleared through a private attribute. `FEEDGEN_FIXES` names each
defect; the renderers take the set of fixes to apply so that
tests/render/test_feeds_feedgen.py can turn one off and show the defect it covers.
"""

from __future__ import annotations

import html
from collections.abc import Collection
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from kabar.render.document import MEDIA_TYPES, FeedDocument, FeedItem, Format, rfc822, rfc3339

FEEDGEN_FIXES: dict[str, str] = {
    "atom-entry-link-attributes": "Atom entry links keep only href, so an enclosure "
    "becomes a second alternate link",
    "rss-channel-link": "the RSS channel <link> is the href of the last link() call, "
    "whatever its rel",
    "rss-hub-link": "RSS keeps only the first rel=self atom:link and drops the WebSub hub "
    "(and RFC 5005 links)",
    "atom-content-type": "content(type='CDATA') writes type=\"CDATA\", which is invalid Atom",
    "description-replaces-content": "description() after content() replaces the Atom "
    "content with the summary",
    "media-group": "media:content is wrapped in a single-child media:group",
    "entry-order": "add_entry() prepends, reversing newest-first input",
    "build-date-now": "lastBuildDate and updated default to now(), so identical content "
    "never gives identical bytes",
    "locale-date-format": "RSS dates are formatted by switching the process-wide locale, "
    "which is not thread-safe",
    "rss-author-email": "RSS <author> is written only for authors with an email address",
}
ALL_FIXES = frozenset(FEEDGEN_FIXES)

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_MEDIA_CONTENT = f"{{{MEDIA_NS}}}content"
_GROUPED_CONTENT = f"{{{MEDIA_NS}}}group/{{{MEDIA_NS}}}content"


def render_rss_atom(
    doc: FeedDocument, formats: Collection[Format], fixes: frozenset[str]
) -> dict[Format, bytes]:
    """RSS and/or Atom from one generator (entries are built once for both)."""
    fg = _generator(doc, fixes)
    out: dict[Format, bytes] = {}
    for fmt in formats:
        fg.kabar.fmt = fmt
        fg.link(_feed_links(doc, fmt, fixes), replace=True)
        out[fmt] = bytes(fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True))
    return out


def _generator(doc: FeedDocument, fixes: frozenset[str]) -> Any:
    fg = FeedGenerator()
    if any(item.image_url for item in doc.items):
        fg.load_extension("media")  # first: kabar's entry extension edits its output
    fg.register_extension("kabar", _FeedExtension, _EntryExtension)
    fg.kabar.setup(doc, fixes)
    fg.id(doc.atom_id)
    fg.title(doc.title)
    fg.description(doc.description or doc.title)  # RSS requires one
    fg.language(doc.language)
    if doc.author:
        fg.author({"name": doc.author})
    if doc.logo_url:
        fg.logo(doc.logo_url)
    fg.generator(doc.generator)
    if "build-date-now" in fixes:
        fg.updated(doc.updated)
        if "locale-date-format" in fixes:
            # kabar writes lastBuildDate itself (see _FeedExtension); feedgen would format
            # it by switching the process-wide locale.
            fg._FeedGenerator__rss_lastBuildDate = None
    order = "append" if "entry-order" in fixes else "prepend"
    for item in doc.items:
        _add_entry(fg.add_entry(order=order), item, fixes, doc.language)
    return fg


def _feed_links(doc: FeedDocument, fmt: Format, fixes: frozenset[str]) -> list[dict[str, str]]:
    own = [{"href": doc.self_urls[fmt], "rel": "self", "type": MEDIA_TYPES[fmt]}]
    if doc.hub_url and not doc.is_archive:
        own.append({"href": doc.hub_url, "rel": "hub"})
    if fmt in doc.prev_archive:
        own.append({"href": doc.prev_archive[fmt], "rel": "prev-archive"})
    if fmt in doc.current:
        own.append({"href": doc.current[fmt], "rel": "current", "type": MEDIA_TYPES[fmt]})
    alternate = {"href": doc.home_url, "rel": "alternate", "type": "text/html"}
    # feedgen makes the RSS channel <link> of whichever link comes last.
    return [*own, alternate] if "rss-channel-link" in fixes else [alternate, *own]


def _add_entry(fe: Any, item: FeedItem, fixes: frozenset[str], feed_language: str) -> None:
    fe.kabar.setup(item, fixes, feed_language)
    fe.title(item.title)
    # feedgen keeps one id for both formats; the Atom id is set in _EntryExtension.
    fe.guid(item.guid, permalink=item.guid == item.url)
    if "locale-date-format" not in fixes:
        fe.published(item.published)
    fe.updated(item.updated)
    fe.link(href=item.url, rel="alternate", type="text/html")
    for enclosure in item.enclosures:
        fe.enclosure(enclosure.url, enclosure.length, enclosure.type)
    fe.kabar.links = fe.link()
    if item.authors:
        fe.author([{"name": name} for name in item.authors])
    if item.categories:
        fe.category([{"term": term} for term in item.categories])
    fe.content(item.content_html, type="html" if "atom-content-type" in fixes else "CDATA")
    if item.summary:
        # RSS description and Atom summary both carry HTML: escape the plain-text summary.
        summary = html.escape(item.summary, quote=False)
        if "description-replaces-content" in fixes:
            fe.summary(summary, type="html")
        else:
            fe.description(summary)
    if item.image_url:
        group = None if "media-group" in fixes else "default"
        fe.media.content({"url": item.image_url, "medium": "image"}, group=group)


class _FeedExtension(BaseExtension):  # type: ignore[misc]
    """Feed-level elements feedgen can't write (or writes wrongly) for kabar."""

    doc: FeedDocument
    fmt: Format
    fixes: frozenset[str]

    def setup(self, doc: FeedDocument, fixes: frozenset[str]) -> None:
        self.doc, self.fixes, self.fmt = doc, fixes, "rss"

    def extend_ns(self) -> dict[str, str]:
        namespaces = {"fh": HISTORY_NS} if self.doc.is_archive else {}
        if self.fmt == "rss" and any(item.authors for item in self.doc.items):
            namespaces["dc"] = DC_NS
        return namespaces

    def extend_rss(self, rss: Any) -> Any:
        channel = rss.find("channel")
        if "locale-date-format" in self.fixes and "build-date-now" in self.fixes:
            _sub(channel, "lastBuildDate", rfc822(self.doc.updated))
        if "rss-hub-link" in self.fixes:
            for link in _feed_links(self.doc, "rss", self.fixes):
                if link["rel"] in ("hub", "prev-archive", "current"):
                    etree.SubElement(channel, f"{{{ATOM_NS}}}link", link)
        self._mark_archive(channel)
        return rss

    def extend_atom(self, feed: Any) -> Any:
        self._mark_archive(feed)
        return feed

    def _mark_archive(self, parent: Any) -> None:
        if self.doc.is_archive:
            etree.SubElement(parent, f"{{{HISTORY_NS}}}archive")


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Per-entry repairs and additions, run after feedgen (and its media extension)
    have written the entry."""

    item: FeedItem
    fixes: frozenset[str]
    feed_language: str
    links: list[dict[str, str]]

    def setup(self, item: FeedItem, fixes: frozenset[str], feed_language: str) -> None:
        self.item, self.fixes, self.feed_language, self.links = item, fixes, feed_language, []

    def extend_atom(self, entry: Any) -> Any:
        if self.item.language and self.item.language != self.feed_language:
            entry.set(XML_LANG, self.item.language)
        if self.item.atom_id != self.item.guid:
            entry.find("id").text = self.item.atom_id
        if "locale-date-format" in self.fixes:
            _sub(entry, "published", rfc3339(self.item.published))
        if "atom-entry-link-attributes" in self.fixes:
            for element, link in zip(entry.findall("link"), self.links, strict=True):
                for name in ("rel", "type", "hreflang", "title", "length"):
                    if link.get(name):
                        element.set(name, str(link[name]))
        self._describe_image(entry)
        return entry

    def extend_rss(self, entry: Any) -> Any:
        if "locale-date-format" in self.fixes:
            _sub(entry, "pubDate", rfc822(self.item.published))
        if "rss-author-email" in self.fixes:
            for name in self.item.authors:
                _sub(entry, f"{{{DC_NS}}}creator", name)
        self._describe_image(entry)
        return entry

    def _describe_image(self, entry: Any) -> None:
        if not self.item.image_alt:
            return
        # A direct child; inside media:group only while that workaround is off.
        for content in entry.findall(_MEDIA_CONTENT) or entry.findall(_GROUPED_CONTENT):
            _sub(content, f"{{{MEDIA_NS}}}description", self.item.image_alt)


def _sub(parent: Any, tag: str, text: str) -> Any:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element
