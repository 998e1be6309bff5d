"""Text helpers shared by the readers: cleaning, sanitising and summarising."""

from __future__ import annotations

import html
import re

import nh3

# C0/C1 control characters are invalid in XML 1.0 and meaningless in mail; tabs and
# newlines are kept. Lone surrogates can't be encoded to UTF-8 at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s")

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "dl", "dt", "em",
    "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p",
    "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
_BLOCK_TAG = re.compile(
    r"</?(?:p|br|li|h[2-6]|blockquote|tr|figure|figcaption|pre|div)\b[^>]*>", re.I
)
_ANY_TAG = re.compile(r"<[^>]+>")


def clean(text: str) -> str:
    """Drop control characters and collapse runs of spaces; keep line breaks."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _SPACES.sub(" ", text).replace(" \n", "\n").replace("\n ", "\n").strip()


def one_line(text: str) -> str:
    """For titles and other single-line fields: no line breaks survive."""
    return " ".join(clean(text).split())


def sanitize_html(markup: str) -> str:
    """Article HTML reduced to safe markup: no scripts, styles, handlers or frames."""
    return nh3.clean(
        _CONTROL.sub("", markup),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    ).strip()


def html_to_text(markup: str) -> str:
    """Readable plain text from (sanitised) HTML, one paragraph per block."""
    with_breaks = _BLOCK_TAG.sub("\n", sanitize_html(markup))
    text = html.unescape(_ANY_TAG.sub("", with_breaks))
    paragraphs = [one_line(part) for part in text.split("\n")]
    return "\n\n".join(part for part in paragraphs if part)


def paragraphs_to_html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{html.escape(paragraph, quote=False)}</p>" for paragraph in paragraphs)


def looks_like_html(text: str) -> bool:
    return bool(
        re.search(r"</?(?:p|br|div|a|em|strong|b|i|ul|ol|li|h[1-6]|img|span)\b", text, re.I)
    )


def split_body(body: str) -> tuple[str, str]:
    """(sanitised HTML, plain text) of a body given as HTML or as plain paragraphs."""
    if looks_like_html(body):
        markup = sanitize_html(body)
        return markup, html_to_text(markup)
    paragraphs = [one_line(part) for part in clean(body).split("\n\n") if part.strip()]
    return paragraphs_to_html(paragraphs), "\n\n".join(paragraphs)


def summarize(text: str, limit: int = 280) -> str:
    """The lead of `text`, cut at a sentence (or failing that a word) within `limit`."""
    lead = one_line(text.split("\n\n", 1)[0])
    if len(lead) <= limit:
        return lead
    sentences = _SENTENCE_END.split(lead[: limit + 1])
    if len(sentences) > 1:
        return " ".join(sentences[:-1]).strip()
    cut = lead[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:-–— ") + "…"


def counted(number: int, noun: str) -> str:
    """`1 file`, `2 files`: English summaries count in the singular where one."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"
