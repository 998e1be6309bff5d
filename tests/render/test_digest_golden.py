"""The seed's issue, byte for byte: HTML, text and message headers.

Regenerate on purpose with KABAR_REGENERATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kabar.store import Store

from ..support.digest import RECIPIENT, digest_config, ingest_seed, seed_issue
from ..support.golden import assert_golden
from ..support.project import WriteConfig


@pytest.fixture
def seed_files(write_config: WriteConfig, store: Store, project: Path) -> dict[str, bytes]:
    config = digest_config(write_config, window="since_last")
    ingest_seed(config, store)
    issue = seed_issue(config, store)
    message = issue.message_for(RECIPIENT)
    return {
        "seed.html": issue.html_for(RECIPIENT).encode(),
        "seed.txt": issue.text_for(RECIPIENT).encode(),
        "seed.headers": message.split(b"\r\n\r\n", 1)[0] + b"\r\n",
    }


@pytest.mark.parametrize("name", ["seed.html", "seed.txt", "seed.headers"])
def test_seed_issue_matches_golden(seed_files: dict[str, bytes], name: str) -> None:
    assert_golden(f"digest/{name}", seed_files[name])


def test_seed_issue_reads_like_the_seed_page(seed_files: dict[str, bytes]) -> None:
    """The golden content itself: the seed's article and the items its page lists, each a
    card. Every item the publisher listed is a card of this issue, so no card repeats
    another under "Berita terkait"."""
    text = seed_files["seed.txt"].decode()
    assert "Xi Jinping dan Kim Jong Un Berkolaborasi Lawan Tekanan Asing" in text
    assert "Minggu, 11 Juli 2021 17:00 WIB · ISTMAN MP | REUTERS" in text
    assert "Gedung Putih Minta Rusia Dijatuhi Sanksi Lagi" in text
    assert "Berita terkait" not in text
    assert "Baca Selengkapnya: https://kabar.example.id/read/" in text
    html = seed_files["seed.html"].decode()
    assert "Berita terkait" not in html and html.count("Baca Selengkapnya") == 11


def test_dark_mode_accent_reads_on_the_dark_card(seed_files: dict[str, bytes]) -> None:
    """The section labels' accent (#b4161b, 2.4:1 on the dark card) is lightened in dark
    mode until it meets WCAG AA's 4.5:1; light mode keeps the brand colour."""
    from kabar.render.email import DARK_CARD, MIN_CONTRAST, contrast, readable_on, rgb

    page = seed_files["seed.html"].decode()
    dark = readable_on("#b4161b", DARK_CARD)
    assert f".kabar-body .kabar-accent {{ color: {dark} !important; }}" in page
    assert contrast(rgb(dark), rgb(DARK_CARD)) >= MIN_CONTRAST
    assert contrast(rgb("#b4161b"), rgb(DARK_CARD)) < MIN_CONTRAST
    assert "color:#b4161b" in page.replace(" ", "")  # the light mode's brand colour stays
