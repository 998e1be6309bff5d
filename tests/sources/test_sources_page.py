from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kabar.sources import ReadContext, ReadError, read_file
from kabar.sources.base import parse_relative_time
from kabar.sources.page import parse_date_line

from ..support.golden import assert_golden
from ..support.project import SEED, SEED_AS_OF

CONTEXT = ReadContext(
    source="seeds",
    base_url="https://kabar.example.id/read",
    language="id",
    timezone=ZoneInfo("Asia/Jakarta"),
    as_of=SEED_AS_OF,
)


def test_the_seed_yields_exactly_eleven_articles() -> None:
    articles = read_file(SEED, CONTEXT)
    assert len(articles) == 11
    assert len({a.id for a in articles}) == 11


def test_every_field_of_the_main_article_is_pinned() -> None:
    main = read_file(SEED, CONTEXT)[0]
    encoded = json.dumps(main.to_dict(), ensure_ascii=False, indent=2) + "\n"
    assert_golden("seed_main_article.json", encoded.encode())


def test_the_main_article_is_parsed_like_a_reader_would() -> None:
    main = read_file(SEED, CONTEXT)[0]
    assert main.title == "Xi Jinping dan Kim Jong Un Berkolaborasi Lawan Tekanan Asing"
    assert main.published.isoformat() == "2021-07-11T17:00:00+07:00"
    assert main.dateline == "TEMPO.CO, Jakarta"
    assert main.body_text.startswith("Presiden Cina Xi Jinping dan Pemimpin Agung")
    assert "TEMPO.CO" not in main.body_text and "Baca juga" not in main.body_text
    assert main.cross_links == (
        "Penanganan COVID-19 di Korut Tak Memuaskan, Kim Jong Un Pecat Pejabatnya",
    )
    assert main.credit == "ISTMAN MP | REUTERS"
    assert main.authors == ("ISTMAN MP",)
    assert "ISTMAN MP" not in main.body_text
    assert main.body_text.count("\n\n") == 5  # six paragraphs
    assert len(main.related) == 10
    assert main.related[0].title.startswith("Gedung Putih Minta Rusia")


def test_related_items_become_articles_dated_from_their_relative_time() -> None:
    related = read_file(SEED, CONTEXT)[1:]
    ages = [SEED_AS_OF - article.published for article in related]
    hours = [age / timedelta(hours=1) for age in ages]
    assert hours == [4, 6, 14, 15, 18, 18, 19, 24, 24, 24]
    first = related[0]
    assert first.summary.startswith("Gedung Putih menyarankan agar Rusia")
    assert "Baca Selengkapnya" not in first.summary
    assert first.title not in first.summary
    assert first.published.utcoffset() == timedelta(hours=7)  # shown in the site's zone


def test_relative_times_resolve_against_the_file_time_when_no_as_of(tmp_path: Path) -> None:
    as_of = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    articles = read_file(SEED, replace(CONTEXT, as_of=as_of))
    assert articles[1].published == as_of - timedelta(hours=4)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Minggu, 11 Juli 2021 17:00 WIB", "2021-07-11T17:00:00+07:00"),
        ("Rabu, 1 Mei 2024 08.15 WITA", "2024-05-01T08:15:00+08:00"),
        ("Jumat, 6 Desember 2024 21:05 WIT", "2024-12-06T21:05:00+09:00"),
        ("Jum'at, 6 Des 2024 21:05 WIT", "2024-12-06T21:05:00+09:00"),
        ("11 Agustus 2021", "2021-08-11T00:00:00+07:00"),
    ],
)
def test_indonesian_date_lines(line: str, expected: str) -> None:
    parsed = parse_date_line(line)
    assert parsed is not None and parsed.isoformat() == expected


@pytest.mark.parametrize("line", ["Minggu, 31 Februari 2021 17:00 WIB", "Minggu 11 Julai 2021", ""])
def test_not_date_lines(line: str) -> None:
    assert parse_date_line(line) is None


@pytest.mark.parametrize(
    ("line", "hours"),
    [("30 menit lalu", 0.5), ("4 jam lalu", 4), ("1 hari lalu", 24), ("2 jam yang lalu", 2),
     ("3 hours ago", 3), ("1 minggu lalu", 168)],
)  # fmt: skip
def test_relative_times(line: str, hours: float) -> None:
    assert parse_relative_time(line) == timedelta(hours=hours)


@pytest.mark.parametrize("line", ["3000 tahun lalu", "3000000 tahun lalu", "99999999999 years ago"])
def test_ages_past_a_century_are_not_relative_times(line: str) -> None:
    assert parse_relative_time(line) is None


def test_a_related_item_older_than_the_calendar_is_left_out(tmp_path: Path) -> None:
    page = tmp_path / "kuno.txt"
    page.write_text(
        "Judul\n\nMinggu, 1 Juli 0001 10:00 WIB\n\nIsi berita.\n\nBerita terkait\n\n"
        "Kisah lama\n\n5 hari lalu\n",
        encoding="utf-8",
    )
    early = replace(CONTEXT, as_of=datetime(1, 1, 1, 1, tzinfo=UTC))
    titles = [article.title for article in read_file(page, early)]
    assert titles == ["Judul"]


def test_a_page_without_a_date_line_says_which_line(tmp_path: Path) -> None:
    page = tmp_path / "bad.txt"
    page.write_text("Judul\n\nbukan tanggal\n\nIsi berita.\n", encoding="utf-8")
    with pytest.raises(ReadError, match="line 3: expected a date line"):
        read_file(page, CONTEXT)


def test_a_page_keeps_its_offset_across_zones(tmp_path: Path) -> None:
    page = tmp_path / "wita.txt"
    page.write_text(
        "Gempa di Mataram\n\nSenin, 5 Agustus 2024 09:30 WITA\n\n"
        "ANTARA, Mataram - Gempa mengguncang.\n",
        encoding="utf-8",
    )
    [article] = read_file(page, CONTEXT)
    assert article.published.utcoffset() == timedelta(hours=8)
    assert article.dateline == "ANTARA, Mataram"
    assert article.body_text == "Gempa mengguncang."
    assert article.published.astimezone(UTC).hour == 1
