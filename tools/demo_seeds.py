"""Write seeds/berita-indosum.jsonl: a month of real Indonesian news for the demo.

The demo's digest needs a newsroom's month of articles behind it, or its "Berita terkait"
blocks have nothing to choose from. This takes the busiest 31 days of IndoSum (Kurniawan &
Louvan 2018, CC BY-SA 4.0; read from ../shared/data/indosum beside the repository, or
--data) and writes them as JSON Lines with relative times ("5 jam lalu"), so the demo's
newest articles are as fresh as the checkout: a reader resolves them against the file's
modification time. IndoSum keeps no headlines, so each title is rebuilt from the
article's URL slug (the start of its headline), with the capitals the body gives each
word. Categories become sections; showbiz and hiburan are both "Hiburan".

Usage: python tools/demo_seeds.py [--data DIR] [--days 31]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "seeds" / "berita-indosum.jsonl"
SECTIONS = {
    "tajuk utama": "Utama", "olahraga": "Olahraga", "teknologi": "Teknologi",
    "showbiz": "Hiburan", "hiburan": "Hiburan", "inspirasi": "Inspirasi",
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


def headline(slug: str, body: str) -> str:
    """`belum-sebulan-penjualan-toyota-calya-sud` → `Belum sebulan penjualan Toyota Calya`:
    the slug's last word is dropped when the body has no such word (the slug was cut),
    then any preposition left dangling."""
    spellings: dict[str, Counter[str]] = {}
    for word in re.findall(r"\w+", body):
        spellings.setdefault(word.lower(), Counter())[word] += 1
    words = [word for word in slug.split("-") if word]
    if len(words) > 1 and words[-1] not in spellings:
        words.pop()
    while len(words) > 1 and words[-1] in DANGLING:
        words.pop()
    text = " ".join(
        spellings[word].most_common(1)[0][0] if word in spellings else word for word in words
    )
    return text[:1].upper() + text[1:]


def age_text(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes} menit lalu" if minutes < 60 else f"{minutes // 60} jam lalu"


def record(row: dict[str, str], newest: datetime) -> dict[str, object]:
    age = newest - datetime.fromisoformat(row["published"]) + NEWEST_AGE
    return {
        "url": row["url"],
        "title": headline(row["slug"], row["body"]),
        "body": row["body"],
        "published": age_text(age),
        "section": SECTIONS[row["category"]],
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
