"""Dates, relative times and interface strings in Indonesian and English."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from kabar.render.locale import CATALOGS, format_ago, format_date, format_datetime, translations

from ..support.project import ROOT

JAKARTA = ZoneInfo("Asia/Jakarta")
SEED_TIME = datetime(2021, 7, 11, 17, 0, tzinfo=JAKARTA)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=JAKARTA)


@pytest.mark.parametrize(
    ("zone", "language", "expected"),
    [
        ("Asia/Jakarta", "id", "Minggu, 11 Juli 2021 17:00 WIB"),
        ("Asia/Makassar", "id", "Minggu, 11 Juli 2021 18:00 WITA"),
        ("Asia/Jayapura", "id", "Minggu, 11 Juli 2021 19:00 WIT"),
        ("Asia/Jakarta", "en", "Sunday, 11 July 2021 17:00 WIB"),
        ("UTC", "en", "Sunday, 11 July 2021 10:00 UTC"),
    ],
)
def test_long_dates_read_like_indonesian_news_sites(
    zone: str, language: str, expected: str
) -> None:
    assert format_datetime(SEED_TIME, ZoneInfo(zone), language) == expected


def test_dates_without_time() -> None:
    assert format_date(NOW, JAKARTA, "id") == "Rabu, 1 Mei 2024"
    assert format_date(NOW, JAKARTA, "id", weekday=False) == "1 Mei 2024"
    assert format_date(NOW, JAKARTA, "en", weekday=False) == "1 May 2024"


@pytest.mark.parametrize(
    ("age", "indonesian", "english"),
    [
        (timedelta(seconds=20), "baru saja", "just now"),
        (timedelta(minutes=30), "30 menit lalu", "30 minutes ago"),
        (timedelta(minutes=59, seconds=59), "59 menit lalu", "59 minutes ago"),
        (timedelta(hours=4), "4 jam lalu", "4 hours ago"),
        (timedelta(hours=4, minutes=50), "4 jam lalu", "4 hours ago"),
        (timedelta(hours=23), "23 jam lalu", "23 hours ago"),
        (timedelta(hours=23, minutes=59), "23 jam lalu", "23 hours ago"),
        (timedelta(days=1), "1 hari lalu", "1 day ago"),
        (timedelta(days=6, hours=23), "6 hari lalu", "6 days ago"),
        (timedelta(days=8), "1 minggu lalu", "1 week ago"),
    ],
)
def test_relative_times_truncate_and_say_lalu(
    age: timedelta, indonesian: str, english: str
) -> None:
    assert format_ago(NOW - age, NOW, "id") == indonesian
    assert format_ago(NOW - age, NOW, "en") == english


def test_a_future_time_is_just_now() -> None:
    assert format_ago(NOW + timedelta(minutes=5), NOW, "id") == "baru saja"


def _catalog(language: str) -> dict[str, object]:
    path = CATALOGS / language / "LC_MESSAGES" / "kabar.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return {message.id if isinstance(message.id, str) else message.id[0]: message.string
            for message in catalog if message.id}  # fmt: skip


def _used_message_ids() -> set[str]:
    """Every msgid the templates and the Python sources ask for."""
    found: set[str] = set()
    for template in sorted((ROOT / "templates").glob("*.j2")):
        with template.open("rb") as handle:
            for _, _, message, _ in babel_extract(handle, ("_", "gettext", "ngettext"), [], {}):
                found.add(message if isinstance(message, str) else message[0])
    for source in sorted((ROOT / "src" / "kabar").rglob("*.py")):
        with source.open("rb") as handle:
            for _, message, _, _ in extract("python", handle, keywords={"gettext": None}):
                found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_interface_string_is_translated() -> None:
    used = _used_message_ids()
    assert {"Read more", "Related news", "Unsubscribe", "just now"} <= used
    for language in ("id", "en"):
        catalog = _catalog(language)
        missing = sorted(used - set(catalog))
        assert not missing, f"{language}: not in the catalog: {missing}"
        empty = sorted(key for key in used if not catalog[key])
        assert not empty, f"{language}: untranslated: {empty}"
    assert set(_catalog("id")) - used == set(), "catalog entries no template uses"


def test_indonesian_catalog_speaks_like_the_seed_page() -> None:
    indonesian = translations("id")
    assert indonesian.gettext("Read more") == "Baca Selengkapnya"
    assert indonesian.gettext("Related news") == "Berita terkait"
    assert indonesian.ngettext("%(num)d article", "%(num)d articles", 11) % {"num": 11} == (
        "11 berita"
    )
    assert (
        translations("en").ngettext("%(num)d article", "%(num)d articles", 1) % {"num": 1}
        == "1 article"
    )


def test_templates_hold_no_interface_text() -> None:
    """Visible words come from the catalog: the templates carry no Indonesian of their own."""
    for template in (ROOT / "templates").glob("*.j2"):
        text = template.read_text(encoding="utf-8")
        for word in ("Baca Selengkapnya", "Berita terkait", "Berhenti", "Lihat di"):
            assert word not in text, f"{template.name} hard-codes {word!r}"


def test_unknown_language_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no message catalog for language 'xx'"):
        translations("xx")
