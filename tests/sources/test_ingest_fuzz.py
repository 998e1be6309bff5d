"""Every reader, fed random bytes, JSON, XML and page text: each file gives articles or a
ReadError for that file, never another exception, within a time and memory budget.

Bounded in examples (the module runs in well under 30 s) and fully offline."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kabar.links import safe_url
from kabar.sources import ReadContext, ReadError, read_file
from kabar.sources.feed import parse_feed
from kabar.sources.jsonl import FIELDS

CONTEXT = ReadContext(
    source="fuzz",
    base_url="https://kabar.example.id",
    language="id",
    timezone=ZoneInfo("Asia/Jakarta"),
    as_of=datetime(2024, 5, 1, 5, tzinfo=UTC),
)
SUFFIXES = [".json", ".jsonl", ".xml", ".rss", ".atom", ".txt", "", ".bin"]
TIME_BUDGET = 5.0  # seconds per file: generous for a shared CI machine, far below a hang
MEMORY_BUDGET = 200 * 2**20  # growth of peak RSS while reading one file
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def read_one(data: bytes, suffix: str) -> None:
    """Read `data` as a file named with `suffix` and as a fetched feed body."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rejected: list[tuple[int | str, str]] = []
    context = replace(CONTEXT, reject=lambda where, reason: rejected.append((where, reason)))
    with TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        for read in (lambda: read_file(path, context), lambda: parse_feed(data, context)):
            started = time.monotonic()
            try:
                articles = read()
            except ReadError as exc:
                assert str(exc)
            else:
                assert all(safe_url(article.url) for article in articles)
                assert all(len(article.title) <= 300 for article in articles)
            assert time.monotonic() - started < TIME_BUDGET
    assert all(reason for _, reason in rejected)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY_BUDGET, f"peak RSS grew by {grown / 2**20:.0f} MiB"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["https://k.id/a", "javascript:alert(1)", "2024-05-01T08:00:00+07:00",
                     "kemarin", "\u202eJudul", "x" * 400, "data:,x", "/relative"]),
)  # fmt: skip
records = st.dictionaries(st.sampled_from([*FIELDS, "id", "items", "version"]), field_values)


def deep(depth: int, open_: str, close: str) -> str:
    return open_ * depth + close * depth


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(data: bytes, suffix: str) -> None:
    read_one(data, suffix)


@FUZZ
@given(
    items=st.lists(st.one_of(records, json_values), max_size=8),
    shape=st.sampled_from(["array", "lines", "object", "articles", "feed"]),
    depth=st.integers(0, 3000),
    suffix=st.sampled_from([".json", ".jsonl", ""]),
)
def test_random_json(items: list[Any], shape: str, depth: int, suffix: str) -> None:
    if shape == "array":
        text = json.dumps(items)
    elif shape == "lines":
        text = "\n".join(json.dumps(item) for item in items)
    elif shape == "object":
        text = json.dumps(items[0] if items else {})
    elif shape == "articles":
        text = json.dumps({"articles": items})
    else:
        text = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items})
    if depth:
        text = text.replace("[", "[" + deep(depth, "[", "]") + ",", 1) if "[" in text else text
    read_one(text.encode(), suffix)


TAGS = "rss channel item title link guid pubDate description feed entry id updated".split()
TAGS += ["published", "content", "media:content", "category", "x"]
xml_trees: st.SearchStrategy[str] = st.recursive(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30).map(
        lambda t: t.replace("&", "&amp;").replace("<", "&lt;")
    ),
    lambda children: st.builds(
        lambda tag, kids, attr: f"<{tag}{attr}>{''.join(kids)}</{tag}>",
        st.sampled_from(TAGS),
        st.lists(children, max_size=4),
        st.sampled_from(["", ' version="2.0"', ' url="javascript:x" medium="image"',
                         ' xmlns="http://www.w3.org/2005/Atom"', ' href="https://k.id/a"']),
    ),
    max_leaves=40,
)  # fmt: skip


@FUZZ
@given(
    tree=xml_trees,
    prolog=st.sampled_from(
        ["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="latin-1"?>']
    ),
    depth=st.integers(0, 5000),
    suffix=st.sampled_from([".xml", ".rss", ""]),
)
def test_random_xml(tree: str, prolog: str, depth: int, suffix: str) -> None:
    text = prolog + '<rss version="2.0"><channel>' + deep(depth, "<x>", "</x>") + tree
    read_one((text + "</channel></rss>").encode(), suffix)


page_lines = st.one_of(
    st.text(max_size=120),
    st.sampled_from([
        "Minggu, 11 Juli 2021 17:00 WIB", "32 Juli 2021", "Berita terkait", "4 jam lalu",
        "Baca juga: Lain", "ISTMAN MP | REUTERS", "TEMPO.CO, Jakarta - Isi", "Baca Selengkapnya",
        "A" + " A" * 500 + " |", "99999999999999999999 tahun lalu",
    ]),
)  # fmt: skip


@FUZZ
@given(lines=st.lists(page_lines, max_size=30), suffix=st.sampled_from([".txt", "", ".page"]))
def test_random_page_text(lines: list[str], suffix: str) -> None:
    read_one("\n".join(lines).encode("utf-8", "surrogatepass"), suffix)
