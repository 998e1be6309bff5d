"""Dates, relative times and interface strings in Indonesian or English.

Dates and relative times come from Babel's CLDR data, adjusted to how Indonesian news
sites write them (`Minggu, 11 Juli 2021 17:00 WIB`, `4 jam lalu`). Interface strings come
from the gettext catalogs in `kabar/locale/<language>/LC_MESSAGES/kabar.po`, compiled with
Babel when first used, so the `.po` sources are the only copy and can never be stale.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from babel.dates import TIMEDELTA_UNITS, format_timedelta
from babel.dates import format_datetime as babel_format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

CATALOGS = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "kabar"

DATETIME_PATTERN = "EEEE, d MMMM y HH:mm"  # the zone is appended on its own, see _zone_name
DATE_PATTERN = "EEEE, d MMMM y"
SHORT_DATE_PATTERN = "d MMMM y"
# Babel's Indonesian says "4 jam yang lalu"; news sites write "4 jam lalu".
_YANG_LALU = re.compile(r"\byang lalu$")


@functools.cache
def translations(language: str) -> gettext.GNUTranslations:
    """The compiled catalog for `language` ("id" or "en")."""
    source = CATALOGS / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not source.is_file():
        raise LookupError(f"no message catalog for language {language!r} (looked for {source})")
    with source.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def format_datetime(moment: datetime, zone: tzinfo, language: str) -> str:
    """`Minggu, 11 Juli 2021 17:00 WIB` (id) or `Sunday, 11 July 2021 17:00 WIB` (en)."""
    text = babel_format_datetime(moment, DATETIME_PATTERN, tzinfo=zone, locale=language)
    return f"{text} {_zone_name(moment, zone, language)}"


def format_date(moment: datetime, zone: tzinfo, language: str, *, weekday: bool = True) -> str:
    """`Rabu, 1 Mei 2024`, or `1 Mei 2024` without the weekday."""
    pattern = DATE_PATTERN if weekday else SHORT_DATE_PATTERN
    return babel_format_datetime(moment, pattern, tzinfo=zone, locale=language)


def _zone_name(moment: datetime, zone: tzinfo, language: str) -> str:
    """WIB, WITA and WIT in both languages: English CLDR only knows them as +0700 etc.,
    while English-language Indonesian media write WIB too."""
    name = babel_format_datetime(moment, "z", tzinfo=zone, locale=language)
    if language != "id" and not name[:1].isalpha():
        indonesian = babel_format_datetime(moment, "z", tzinfo=zone, locale="id")
        if indonesian.isalpha():
            return indonesian
    return name


def format_ago(moment: datetime, now: datetime, language: str) -> str:
    """`30 menit lalu`, `4 jam lalu`, `1 hari lalu` (or `4 hours ago`).

    The age is truncated to its largest whole unit, never rounded up: 23 hours 59 minutes
    is `23 jam lalu`, not `1 hari lalu` as Babel's default threshold would say.
    """
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return translations(language).gettext("just now")
    for _unit, size in TIMEDELTA_UNITS:
        if seconds >= size:
            age = timedelta(seconds=seconds // size * size)
            break
    text = format_timedelta(-age, add_direction=True, threshold=1.0, locale=language)
    return _YANG_LALU.sub("lalu", text)


@dataclass(frozen=True)
class Formatter:
    """Everything a template needs to speak one language in one time zone."""

    language: str
    zone: tzinfo

    @property
    def translations(self) -> gettext.GNUTranslations:
        return translations(self.language)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def long_datetime(self, moment: datetime) -> str:
        return format_datetime(moment, self.zone, self.language)

    def long_date(self, moment: datetime, weekday: bool = True) -> str:
        return format_date(moment, self.zone, self.language, weekday=weekday)

    def ago(self, moment: datetime, now: datetime) -> str:
        return format_ago(moment, now, self.language)
