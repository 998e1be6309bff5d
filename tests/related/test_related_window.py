"""Memory follows the window: a store-backed engine holds the window before the newest
article, evicts what leaves it as new articles come, and answers a query in the past by
loading that query's window from the stored terms."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import Config, Related
from kabar.model import Article
from kabar.related import RelatedEngine
from kabar.related.engine import SLACK
from kabar.store import Store

from ..support.project import WriteConfig

WIB = timezone(timedelta(hours=7))
START = datetime(2023, 1, 1, 9, tzinfo=WIB)
DAYS = 240
SETTINGS = Related(min_score=0.01)
TOPICS = [
    ("banjir", "Banjir merendam permukiman warga setelah hujan deras, ribuan warga mengungsi."),
    ("gempa", "Gempa bumi mengguncang pesisir, bangunan retak dan warga berhamburan keluar."),
    ("pemilu", "Komisi pemilihan umum menetapkan daftar calon tetap menjelang pemungutan suara."),
    ("sepak bola", "Tim nasional sepak bola menang tipis dalam laga uji coba di stadion utama."),
]


def article(day: int) -> Article:
    """One article a day, the four topics in turn."""
    name, body = TOPICS[day % len(TOPICS)]
    moment = START + timedelta(days=day)
    return Article(
        id=f"a{day:03d}", guid=f"a{day:03d}", source="test",
        url=f"https://kabar.example.id/{day}", title=f"Kabar {name} hari ke-{day}",
        summary=body, body_text=f"{body} Laporan hari ke-{day} tentang {name}.",
        published=moment, updated=moment,
    )  # fmt: skip


def stored(store: Store, days: range) -> list[Article]:
    articles = [article(day) for day in days]
    store.upsert(articles)
    return articles


def test_the_engine_holds_the_window_before_the_newest_article(
    config: Config, store: Store
) -> None:
    articles = stored(store, range(DAYS))
    engine = RelatedEngine.open(config, store)
    engine.add(articles)  # as ingest does: terms stored, nothing loaded
    engine.load()
    newest = articles[-1].published
    held = [engine.index.docs[n].published for n in engine.index.by_id.values()]
    assert min(held) >= newest - config.related.window - SLACK
    assert len(engine.index) < DAYS // 3
    items = engine.related(articles[-1], settings=SETTINGS)
    assert [i.article_id for i in items] == ["a235", "a231", "a227"]  # its topic, newest first


def test_a_query_in_the_past_loads_its_window_and_then_the_present_again(
    config: Config, store: Store
) -> None:
    articles = stored(store, range(DAYS))
    engine = RelatedEngine.open(config, store)
    engine.load()
    past = articles[60]
    items = engine.related(past, settings=SETTINGS)
    assert [i.article_id for i in items] == ["a056", "a052", "a048"]
    assert engine.span.holds(past.published) and not engine.span.holds(articles[-1].published)
    assert len(engine.index) < DAYS // 3
    # The same block as an engine holding every article.
    everything = RelatedEngine.build(articles, site_language="id")
    assert [i.article_id for i in everything.related(past, settings=SETTINGS)] == [
        i.article_id for i in items
    ]
    newest = engine.related(articles[-1], settings=SETTINGS)
    assert [i.article_id for i in newest] == ["a235", "a231", "a227"]
    assert engine.span.until is None


def test_articles_leaving_the_window_are_evicted_as_new_ones_come(
    config: Config, store: Store
) -> None:
    engine = RelatedEngine.open(config, store)
    engine.add(stored(store, range(60)))
    engine.load()
    first = len(engine.index)
    for day in range(60, DAYS):
        engine.add(stored(store, range(day, day + 1)))  # one at a time, as ingest does
    newest = article(DAYS - 1).published
    held = [engine.index.docs[n].published for n in engine.index.by_id.values()]
    assert min(held) >= newest - config.related.window - 2 * SLACK
    most = (config.related.window + 2 * SLACK).days + 1  # one article a day
    assert first < len(engine.index) <= most and len(engine.index.docs) <= most
    items = engine.related(article(DAYS - 1), settings=SETTINGS)
    assert [i.article_id for i in items] == ["a235", "a231", "a227"]


def test_related_before_a_past_time_loads_that_window(write_config: WriteConfig) -> None:
    path = write_config()
    config = config_module.load(path)
    with Store.open(config.database_url) as store:
        RelatedEngine.open(config, store).add(stored(store, range(DAYS)))  # as ingest does
    issue_time = article(61).published - timedelta(hours=1)  # a digest's issue that day
    result = CliRunner().invoke(
        cli, ["-c", str(path), "related", "a060", "--before", issue_time.isoformat(), "--json"]
    )
    assert result.exit_code == 0, result.output
    block = json.loads(result.output)
    assert [item["id"] for item in block["related"]] == ["a056", "a052", "a048"]
