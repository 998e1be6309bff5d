"""Write seeds/berita-indosum.jsonl: a month of real Indonesian news for the demo.

The demo's digest needs a newsroom's month of articles behind it, or its "Berita terkait"
blocks have nothing to choose from. This takes the busiest 31 days of IndoSum (Kurniawan &
Louvan 2018, CC BY-SA 4.0; read from ../shared/data/indosum beside the repository, or
--data) and writes them as JSON Lines with relative times ("5 jam lalu"), so the demo's
newest articles are as fresh as the checkout: a reader resolves them against the file's
modification time. IndoSum keeps no headlines, so each title is rebuilt from the
article's URL slug, with the capitals the body gives each word; the spacing IndoSum's
tokeniser left ("ke - 11") is closed up, and a lead that is a photo caption dropped.
Categories become sections (showbiz and hiburan are both "Hiburan"; headlines go to the
desk their URL names: Dunia, Ekonomi, else Nasional).

Usage: python tools/demo_seeds.py [--data DIR] [--days 31]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "seeds" / "berita-indosum.jsonl"
SECTIONS = {
    "tajuk utama": "Nasional", "olahraga": "Olahraga", "teknologi": "Teknologi",
    "showbiz": "Hiburan", "hiburan": "Hiburan", "inspirasi": "Inspirasi",
}  # fmt: skip
# IndoSum's "tajuk utama" (headlines) mixes the home, world and business desks; where the
# publisher's URL names the desk, the article goes to that section.
DESKS = {
    "internasional": "Dunia", "dunia": "Dunia", "ekonomi": "Ekonomi", "bisnis": "Ekonomi",
    "uang": "Ekonomi", "bursa-dan-valas": "Ekonomi",
}  # fmt: skip
PUBLISHERS = {
    "cnn indonesia": "CNN Indonesia", "antaranews": "Antara", "merdeka": "Merdeka.com",
    "kumparan": "kumparan", "dailysocial.id": "DailySocial.id", "goal indonesia": "Goal Indonesia",
    "juara.net": "Juara.net", "suara": "Suara.com", "poskotanews": "Pos Kota",
    "okezone": "Okezone", "tribunnews": "Tribunnews", "rima news": "Rima News",
}  # fmt: skip
# Words a cut headline must not end on.
DANGLING = {"di", "ke", "dari", "dengan", "dan", "untuk", "yang", "pada", "dalam", "atau", "oleh"}
# The newest article is this old when the file is fresh: no age of "0 menit".
NEWEST_AGE = timedelta(minutes=30)


def busiest_span(rows: list[dict[str, str]], days: int) -> list[dict[str, str]]:
    times = [datetime.fromisoformat(row["published"]) for row in rows]
    span = timedelta(days=days)
    best = max(times, key=lambda start: sum(start <= t < start + span for t in times))
    return [row for row, t in zip(rows, times, strict=True) if best <= t < best + span]


def section(row: dict[str, str]) -> str:
    desks = [part for part in urlparse(row["url"]).path.split("/") if part in DESKS]
    if row["category"] == "tajuk utama" and desks:
        return DESKS[desks[0]]
    return SECTIONS[row["category"]]


def full_slug(row: dict[str, str]) -> str:
    """The URL's own slug where it starts like IndoSum's (which is cut at 50 characters)."""
    last = [part for part in urlparse(row["url"]).path.split("/") if part][-1]
    last = re.sub(r"\.html?$", "", last)
    last = re.sub(r"^\d+-", "", last).replace(".", "-")  # "1820652-bus-…", "tommy.saya.…"
    squeeze = re.compile(r"[^a-z0-9]")
    same = squeeze.sub("", last).startswith(squeeze.sub("", row["slug"])[:20])
    return last if same else row["slug"]


def headline(slug: str, body: str) -> str:
    """`belum-sebulan-penjualan-toyota-calya-sud` → `Belum sebulan penjualan Toyota Calya`:
    each word spelled as the body spells it, capitalised only where the body never writes
    it in lower case; a cut last word and any preposition left dangling are dropped."""
    spellings: dict[str, Counter[str]] = {}
    for word in re.findall(r"\w+", body):
        spellings.setdefault(word.lower(), Counter())[word] += 1
    words = [word for word in slug.split("-") if word]
    if len(words) > 1 and words[-1] not in spellings:
        words.pop()
    while len(words) > 1 and words[-1] in DANGLING:
        words.pop()
    text = " ".join(_spelling(word, spellings.get(word)) for word in words)
    for first, second in itertools.pairwise(words):  # "saksi saksi" → "saksi-saksi", "1-1"
        joined = re.search(rf"\b{re.escape(first)}-{re.escape(second)}\b", body, re.IGNORECASE)
        if joined:
            text = re.sub(
                rf"\b{re.escape(first)} {re.escape(second)}\b", joined.group(), text, count=1,
                flags=re.IGNORECASE,
            )  # fmt: skip
    return text[:1].upper() + text[1:]


def _spelling(word: str, seen: Counter[str] | None) -> str:
    if not seen or word in seen:
        return word
    return seen.most_common(1)[0][0]


# IndoSum's text was tokenised: "ke - 11", "7 / 9", "‘ Halloween’", "' Aladdin '".
_SPACING = [
    (re.compile("[\u200b\ufeff]"), ""),
    (re.compile(r"(?<=[a-z0-9]) - (?=[a-z0-9])"), "-"),
    (re.compile(r"(?<=\d) / (?=\d)"), "/"),
    (re.compile(r"([‘“(\[]) "), r"\1"),
    (re.compile(r" ([’”)\]])"), r"\1"),
    (re.compile(r"' ([^'\n]{1,80}?) '"), r"'\1'"),
    (re.compile(r'" ([^"\n]{1,200}?) "'), r'"\1"'),
    (re.compile(r" -(nya|lah|kah)\b"), r"-\1"),
]
# A lead paragraph that is a photo's caption, not the story's first lines.
_CAPTION = re.compile(r"^.{0,120}\((Foto|Ilustrasi|Sumber)\b[^)]*\)\s*$")


def readable(body: str) -> str:
    for pattern, replacement in _SPACING:
        body = pattern.sub(replacement, body)
    paragraphs = body.split("\n\n")
    while len(paragraphs) > 1 and _CAPTION.match(paragraphs[0]):
        paragraphs.pop(0)
    return "\n\n".join(paragraphs)


def age_text(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes} menit lalu" if minutes < 60 else f"{minutes // 60} jam lalu"


def record(row: dict[str, str], newest: datetime) -> dict[str, object]:
    age = newest - datetime.fromisoformat(row["published"]) + NEWEST_AGE
    body = readable(row["body"])
    return {
        "url": row["url"],
        "title": headline(full_slug(row), body),
        "body": body,
        "published": age_text(age),
        "section": section(row),
        "language": "id",
        "credit": PUBLISHERS.get(row["source"], row["source"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--days", type=int, default=31)
    args = parser.parse_args()
    source = args.data / "indosum" / "articles.jsonl"
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    chosen = busiest_span(rows, args.days)
    newest = max(datetime.fromisoformat(row["published"]) for row in chosen)
    chosen.sort(key=lambda row: row["published"], reverse=True)
    lines = [json.dumps(record(row, newest), ensure_ascii=False) for row in chosen]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {len(lines)} articles, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
