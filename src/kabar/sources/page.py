"""Article pages as Indonesian news sites publish them (the format of seeds/).

    Title
    Minggu, 11 Juli 2021 17:00 WIB
    TEMPO.CO, Jakarta - First paragraph…
    …more paragraphs, "Baca juga: …" cross-links…
    ISTMAN MP | REUTERS
    Berita terkait
    <title> / 4 jam lalu / <title again> / <summary> / Baca Selengkapnya   (repeated)

The main article keeps the "Berita terkait" list as its publisher-chosen related items,
and each of those items also becomes an article of its own, dated by resolving its
relative time ("4 jam lalu") against the context's as-of time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kabar.model import Article, RelatedLink, article_id
from kabar.sources.base import ReadContext, ReadError, parse_relative_time, slugify, vet
from kabar.text import clean, paragraphs_to_html, summarize

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("januari", "jan"), ("februari", "feb", "pebruari"), ("maret", "mar"),
            ("april", "apr"), ("mei",), ("juni", "jun"), ("juli", "jul"),
            ("agustus", "agu", "agt", "ags", "aug"), ("september", "sep", "sept"),
            ("oktober", "okt", "oct"), ("november", "nov", "nop", "nopember"),
            ("desember", "des", "dec"),
        ],
        start=1,
    )
    for name in names
}  # fmt: skip
ZONES = {"WIB": 7, "WITA": 8, "WIT": 9}
_DAYS = r"(?:Senin|Selasa|Rabu|Kamis|Jum'?at|Sabtu|Minggu|Ahad)"
DATE_LINE = re.compile(
    rf"^(?:{_DAYS}\s*,\s*)?(\d{{1,2}})\s+([A-Za-z]+)\s+(\d{{4}})"
    r"(?:\s*[,|-]?\s*(\d{1,2})[:.](\d{2}))?\s*(WIB|WITA|WIT)?$",
    re.IGNORECASE,
)
# "TEMPO.CO, Jakarta - ": an upper-case outlet, a place, then a dash.
DATELINE = re.compile(r"^([A-Z][A-Z0-9.]*[A-Z0-9]),\s*([^\W\d][^,–—-]{0,40}?)\s+[-–—]\s+(?=\S)")
BACA_JUGA = re.compile(r"^baca\s+juga\s*:\s*(.+)$", re.IGNORECASE)
# "ISTMAN MP | REUTERS": upper-case names separated by pipes or slashes.
BYLINE = re.compile(r"^[A-Z][A-Z.'’ -]*[A-Z.](?:\s*[|/]\s*[A-Z][A-Z0-9.'’ -]*[A-Z0-9.])*$")
RELATED_HEADING = re.compile(
    r"^(berita\s+terkait|related\s+news|baca\s+juga\s+berita\s+lain)$", re.I
)
READ_MORE = re.compile(r"^(baca\s+selengkapnya|read\s+more)$", re.IGNORECASE)


def parse_date_line(line: str) -> datetime | None:
    """`Minggu, 11 Juli 2021 17:00 WIB` → 2021-07-11 17:00 +07:00 (None if not a date)."""
    match = DATE_LINE.match(line.strip())
    if not match:
        return None
    day, month_name, year, hour, minute, zone = match.groups()
    month = MONTHS.get(month_name.lower())
    if month is None:
        return None
    offset = timezone(timedelta(hours=ZONES[zone.upper()] if zone else 7))
    try:
        return datetime(int(year), month, int(day), int(hour or 0), int(minute or 0), tzinfo=offset)
    except ValueError:
        return None


class PageReader:
    name = "page"

    def accepts(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() in {".txt", ".page", ".text", ""}

    def read(self, path: Path, text: str, context: ReadContext) -> list[Article]:
        # clean() keeps line breaks, so line numbers still match the file's.
        numbered = enumerate(clean(text).split("\n"), 1)
        lines = [(number, line) for number, line in numbered if line]
        if len(lines) < 3:
            raise ReadError("too short for an article page: needs a title, a date line and a body")
        (_, title), (date_number, date_text) = lines[0], lines[1]
        published = parse_date_line(date_text)
        if published is None:
            raise ReadError(
                f"line {date_number}: expected a date line like "
                f"'Minggu, 11 Juli 2021 17:00 WIB', got {date_text[:60]!r}"
            )
        rest = [line for _, line in lines[2:]]
        split = next((i for i, line in enumerate(rest) if RELATED_HEADING.match(line)), len(rest))
        body_lines, related_lines = rest[:split], rest[split + 1 :]
        related = _related_items(related_lines, context)
        main = _main_article(path, title, published, body_lines, related, context)
        return [vet(article, context) for article in (main, *related)]


def _main_article(
    path: Path,
    title: str,
    published: datetime,
    body_lines: list[str],
    related: list[Article],
    context: ReadContext,
) -> Article:
    paragraphs: list[str] = []
    cross_links: list[str] = []
    credit = ""
    for line in body_lines:
        baca_juga = BACA_JUGA.match(line)
        if baca_juga:
            cross_links.append(baca_juga.group(1).strip())
        elif line == title:
            continue
        else:
            paragraphs.append(line)
    if paragraphs and len(paragraphs[-1]) <= 80 and BYLINE.match(paragraphs[-1]):
        credit = paragraphs.pop()
    dateline = ""
    if paragraphs:
        match = DATELINE.match(paragraphs[0])
        if match:
            dateline = f"{match.group(1)}, {match.group(2).strip()}"
            paragraphs[0] = paragraphs[0][match.end() :]
    if not paragraphs:
        raise ReadError("the page has a title and a date but no body paragraphs")
    guid = f"{context.base_url}/{path.stem}"
    body_text = "\n\n".join(paragraphs)
    return Article(
        id=article_id(context.source, guid),
        guid=guid,
        source=context.source,
        url=f"{guid}/{slugify(title)}",
        title=title,
        published=published,
        updated=published,
        summary=summarize(body_text),
        body_text=body_text,
        body_html=paragraphs_to_html(paragraphs),
        authors=(credit.split("|")[0].strip(),) if credit else (),
        credit=credit,
        section=context.section,
        language=context.language,
        dateline=dateline,
        cross_links=tuple(cross_links),
        related=tuple(RelatedLink(item.title, item.url, item.summary) for item in related),
    )


def _related_items(lines: list[str], context: ReadContext) -> list[Article]:
    """Each "Berita terkait" entry: a title line followed by a relative time."""
    starts = [i - 1 for i, line in enumerate(lines) if i > 0 and parse_relative_time(line)]
    as_of = context.as_of.astimezone(context.timezone).replace(second=0, microsecond=0)
    items = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        title, age = lines[start], parse_relative_time(lines[start + 1])
        assert age is not None
        summary = " ".join(
            line for line in lines[start + 2 : end] if line != title and not READ_MORE.match(line)
        )
        if as_of - datetime.min.replace(tzinfo=as_of.tzinfo) < age:
            continue  # an --as-of near year 1: the item's time would not exist
        published = as_of - age
        url = f"{context.base_url}/{slugify(title)}"
        items.append(
            Article(
                id=article_id(context.source, url),
                guid=url,
                source=context.source,
                url=url,
                title=title,
                published=published,
                updated=published,
                summary=summary,
                body_text=summary,
                body_html=paragraphs_to_html([summary]) if summary else "",
                section=context.section,
                language=context.language,
            )
        )
    return items
