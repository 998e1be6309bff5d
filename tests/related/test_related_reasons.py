"""`kabar related` says why: on the demo's month of real news, the items the topics
re-ranked carry their topic similarity and neighbourhood agreement, and a short text,
which topics skip, carries neither."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from kabar import config as config_module
from kabar.ingest import ingest_source
from kabar.related import RelatedEngine
from kabar.store import Store

from ..support.project import ROOT

LATENT = re.compile(r"(topic|neighbourhood):(0\.\d\d|1\.00)")


def test_reranked_items_give_their_topic_and_neighbourhood_figures(tmp_path: Path) -> None:
    for folder in ("config", "seeds"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    config = config_module.load(tmp_path / "config" / "kabar.yaml")
    as_of = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)  # the seed files' time
    with Store.open(config.database_url) as store:
        ingest_source(config, store, config.source("seeds"), as_of=as_of)
        engine = RelatedEngine.open(config, store)
        articles = store.articles(newest_first=True)
        long = [a for a in articles if len(set(a.body_text.split())) > 150][:20]
        blocks = [engine.related(a) for a in long]
        lead = long[0].body_text.split(". ")[0]  # one sentence: too few words for topics
        short = long[0].with_changes(id="short", url=f"{long[0].url}#short", body_text=lead)
        short_block = engine.related(short, settings=config.digest("harian").related)
    reasons = [item.reasons for block in blocks for item in block]
    latent = [[r for r in why if r.startswith(("topic:", "neighbourhood:"))] for why in reasons]
    assert sum(len(kinds) == 2 for kinds in latent) >= 30  # most items were re-ranked
    assert all(LATENT.fullmatch(r) for kinds in latent for r in kinds)
    assert short_block and all(not r.startswith(("topic:", "neighbourhood:"))
                               for item in short_block for r in item.reasons)  # fmt: skip
