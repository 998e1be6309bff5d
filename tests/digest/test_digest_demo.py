"""The demo config's issue reads well as a whole: a month of real news (seeds/) behind it,
every card with a full "Berita terkait" block, and no related item twice in the issue."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kabar import config as config_module
from kabar.digest import prepare_issue
from kabar.ingest import ingest_source
from kabar.store import Store

from ..support.project import ROOT


def test_every_card_of_the_demo_issue_has_a_block_and_no_item_repeats(tmp_path: Path) -> None:
    for folder in ("config", "seeds"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    config = config_module.load(tmp_path / "config" / "kabar.yaml")
    as_of = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)  # the seed files' time: a fresh clone
    with Store.open(config.database_url) as store:
        report = ingest_source(config, store, config.source("seeds"), as_of=as_of)
        assert report.articles > 300 and not report.failures
        digest = config.digest("harian")
        issue = prepare_issue(
            config, store, digest, issue_key="demo", issue_time=as_of + timedelta(minutes=10)
        )
    assert issue is not None
    cards = issue.view.cards
    assert len(cards) == digest.max_items
    per_item = digest.related.per_item
    assert [len(card.related) for card in cards] == [per_item] * len(cards)
    related_urls = [item.url for card in cards for item in card.related]
    assert len(set(related_urls)) == len(related_urls)  # no item under two cards
    assert not {card.url for card in cards} & set(related_urls)  # no card as an item
    sections = {card.section for card in cards}
    assert {"Dunia", "Olahraga", "Teknologi"} <= sections  # the page and the month both
