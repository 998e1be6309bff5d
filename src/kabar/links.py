"""The one link policy: what kabar puts in an href, a feed's <link> or a JSON Feed url.

Only absolute http(s) URLs with a host are links. Anything else (`javascript:`, `data:`,
relative paths, URLs with spaces or quotes) becomes no link: ingest drops it with a
warning, and the renderers check again for values that never went through ingest
(the site's logo from the config).
"""

from __future__ import annotations

import re

_HTTP_URL = re.compile(
    r"^https?://[^\s<>\"'`\\/?#\x00-\x1f\x7f]+(?:[/?#][^\s<>\"'`\x00-\x1f\x7f]*)?$", re.I
)


def safe_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL, otherwise ""."""
    return url if url and _HTTP_URL.match(url) else ""


# Embeddings and overrides (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI).
_OPENERS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c",
            "\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"}  # fmt: skip
_CLOSERS = {"\u202c", "\u2069"}


def balanced_bidi(text: str) -> str:
    """`text` without unbalanced bidirectional controls, which would otherwise reorder
    whatever follows the field on the same line (a title in a subject, a tag list)."""
    if not any(ch in _OPENERS or ch in _CLOSERS for ch in text):
        return text
    keep = [True] * len(text)
    open_at: list[int] = []  # positions of unclosed openers
    for index, ch in enumerate(text):
        if ch in _OPENERS:
            open_at.append(index)
        elif ch in _CLOSERS:
            if open_at and _OPENERS[text[open_at[-1]]] == ch:
                open_at.pop()
            else:
                keep[index] = False
    for index in open_at:
        keep[index] = False
    return "".join(ch for ch, kept in zip(text, keep, strict=True) if kept)
