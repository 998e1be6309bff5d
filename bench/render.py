"""Prepare one digest issue for 100,000 subscribers and say what it cost.

    .venv/bin/python bench/render.py [--subscribers N] [--quick]

The issue is the seed page's 11 articles plus one with an image (12 cards), each with
3 related items, rendered once; every subscriber then gets a complete, DKIM-signed
(RSA-2048, relaxed/relaxed) message with their own unsubscribe and preferences URLs.
Printed: the one-time render cost, the per-subscriber cost split into personalising,
building the MIME message and signing, messages per second (wall clock and per CPU
second, which is what "per core" means on a shared machine), peak RSS, and dkimpy's
signing cost measured in the same run as the baseline the fast signer replaces.

Then the same subscribers over 50 variants (2 languages x 25 choices of sections), as
subscribers' own sections and languages make them: the issue is rendered once per variant,
each subscriber's message is made from their variant (as the ledger names it), and the
per-subscriber cost is compared with the single-variant figure (goal: within 1.5x).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kabar import config as config_module
from kabar.config import Config, Related
from kabar.digest import PreparedIssue, prepare_issue
from kabar.ingest import ingest_path
from kabar.model import Article, Recipient, article_id
from kabar.related.fallback import PublisherLink
from kabar.resources import bundled
from kabar.store import Store

SECTIONS = ("Nasional", "Ekonomi", "Olahraga", "Teknologi", "Hiburan")
AS_OF = datetime.fromisoformat("2024-05-01T12:00:00+07:00")
CONFIG = """\
version: 1
site: {title: Kabar Contoh, url: "https://kabar.example.id", contact: "Redaksi Kabar Contoh"}
storage: {database: "sqlite:///kabar.db"}
sources: [{id: seeds, kind: pages, path: SEEDS, base_url: "https://kabar.example.id/read"}]
lists: [{id: pembaca, name: Pembaca Kabar Contoh, from: "Kabar Contoh <redaksi@kabar.example.id>"}]
digests:
  - {id: harian, list: pembaca, subject: "Kabar pagi, {date}", window: since_last, max_items: 12}
delivery:
  feedback_id: "{digest}:{list}:kabar"
  dkim: {domain: kabar.example.id, selector: k1, key_env: BENCH_DKIM_KEY}
"""


class NearestOthers:
    """Three other stored articles per article, standing in for the related engine."""

    def __init__(self, articles: list[Article]) -> None:
        self.articles = articles

    def related(
        self, article: Article, *, before: datetime, settings: Related, exclude: Collection[str]
    ) -> list[Any]:
        others = [other for other in self.articles if other.id != article.id][:3]
        return [PublisherLink(o.title, o.url, o.summary, o.published, o.id) for o in others]


def setup(folder: Path) -> tuple[Config, Store]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    (folder / "dkim.pem").write_bytes(pem)
    os.environ["BENCH_DKIM_KEY"] = str(folder / "dkim.pem")
    path = folder / "kabar.yaml"
    path.write_text(CONFIG.replace("SEEDS", str(bundled("seeds"))))
    config = config_module.load(path)
    store = Store.open(config.database_url)
    ingest_path(config, store, bundled("seeds"), "seeds", as_of=AS_OF)
    photo = "https://kabar.example.id/img/banjir.jpg"
    store.upsert([Article(
        id=article_id("seeds", photo), guid=photo, source="seeds", url=photo,
        title="Foto: Banjir Rob Rendam Pesisir Utara Jakarta", published=AS_OF - timedelta(hours=1),
        updated=AS_OF - timedelta(hours=1), summary="Air laut pasang merendam permukiman.",
        image_url=photo, image_alt="Banjir rob",
    )])  # fmt: skip
    # The seed page names no sections: give the articles five, for the variants case.
    store.upsert([
        article.with_changes(section=SECTIONS[number % len(SECTIONS)])
        for number, article in enumerate(store.articles())
    ])  # fmt: skip
    return config, store


def recipients(count: int) -> list[Recipient]:
    """Subscribers with URL-sized tokens, like the delivery stage's HMAC tokens."""
    out = []
    for number in range(count):
        token = hashlib.sha256(f"bench-{number}".encode()).hexdigest()[:43]
        out.append(Recipient(
            subscriber_id=str(number), email=f"pembaca{number}@example.com",
            name=f"Pembaca {number}" if number % 3 else "",
            unsubscribe_url=f"https://kabar.example.id/u/{token}",
            unsubscribe_mailto=f"mailto:unsubscribe+{token}@kabar.example.id",
            preferences_url=f"https://kabar.example.id/p/{token}",
        ))  # fmt: skip
    return out


def prepare(config: Config, store: Store) -> PreparedIssue:
    articles = list(store.articles())
    issue = prepare_issue(
        config, store, config.digest("harian"), issue_key="harian:pembaca:2024-05-01",
        issue_time=AS_OF, since=AS_OF - timedelta(days=5000),
        related=lambda _config, _store: NearestOthers(articles),
    )  # fmt: skip
    assert issue is not None and len(issue.article_ids) == 12
    return issue


def section_choices(store: Store, count: int) -> list[tuple[str, ...]]:
    """`count` distinct non-empty choices of the stored articles' sections."""
    from itertools import combinations

    sections = sorted({article.section for article in store.articles() if article.section})
    found = [
        combo for size in range(1, len(sections) + 1) for combo in combinations(sections, size)
    ]
    return found[:count]


def prepare_variants(
    config: Config, store: Store, choices: list[tuple[str, tuple[str, ...]]]
) -> PreparedIssue:
    articles = list(store.articles())
    issue = prepare_issue(
        config, store, config.digest("harian"), issue_key="harian:pembaca:2024-05-01",
        issue_time=AS_OF, since=AS_OF - timedelta(days=5000),
        related=lambda _config, _store: NearestOthers(articles), choices=choices,
    )  # fmt: skip
    assert issue is not None
    return issue


def variant_case(
    config: Config, store: Store, people: list[Recipient], wanted: int
) -> tuple[int, float, float, float]:
    """(variants rendered, render seconds, CPU seconds per signed message, wall seconds)
    with the subscribers spread over `wanted` (language, sections) variants."""
    choices = [
        (language, sections)
        for sections in [(), *section_choices(store, wanted // 2 - 1)]
        for language in ("id", "en")
    ]
    start = time.perf_counter()
    issue = prepare_variants(config, store, choices)
    render = time.perf_counter() - start
    routed = [issue.route(*choices[n % len(choices)])[0] for n in range(len(choices))]
    spread = [replace(p, variant=routed[n % len(routed)]) for n, p in enumerate(people)]
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for person in spread:
        issue.message_for(person)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return 1 + len(issue.variants), render, cpu / len(spread), wall


def per_message(function: Any, items: list[Recipient]) -> float:
    """CPU seconds per call of `function` over `items`."""
    start = time.process_time()
    for item in items:
        function(item)
    return (time.process_time() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=200, help="messages signed by dkimpy")
    parser.add_argument(
        "--quick", action="store_true", help="500 subscribers, 20 for dkimpy: a smoke run"
    )
    args = parser.parse_args()
    args.warm = 5
    if args.quick:
        args.subscribers, args.baseline, args.warm = 500, 20, 2

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, store = setup(folder)
        start = time.perf_counter()
        issue = prepare(config, store)
        cold = time.perf_counter() - start
        warm_runs = []
        for _ in range(args.warm):
            start = time.perf_counter()
            prepare(config, store)
            warm_runs.append(time.perf_counter() - start)
        people = recipients(args.subscribers)
        issue.message_for(people[0])  # builds the per-issue MIME skeleton

        sample = people[: min(2000, len(people))]
        unsigned = replace(issue, signer=None)
        unsigned.message_for(people[0])
        personalise = per_message(
            lambda r: (issue.html.fill(issue.values_for(r)), issue.text.fill(issue.values_for(r))),
            sample,
        )
        build = per_message(unsigned.message_for, sample)
        signed = per_message(issue.message_for, sample)

        wall_start, cpu_start = time.perf_counter(), time.process_time()
        size = 0
        for person in people:
            size += len(issue.message_for(person))
        wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        variants, variants_render, variants_each, variants_wall = variant_case(
            config, store, people, 50
        )
        variants_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        baseline = dkimpy_cost(issue, people[: args.baseline], folder / "dkim.pem")
        rsa_alone, hash_alone = primitive_costs(issue, people[0])
        store.close()

    count = len(people)
    html_kb = len(issue.html_for(people[1]).encode()) / 1000
    ratio = baseline / max(signed - build, 1e-9)
    shape = f"12 articles x 3 related; HTML {html_kb:.1f} KB, message {size / count / 1000:.1f} KB"
    render = f"{cold * 1e3:.1f} ms / {statistics.median(warm_runs) * 1e3:.1f} ms"
    dkimpy = f"{baseline * 1e3:.2f} ms ({ratio:.0f}x the fast signer)"
    rows = [
        ("issue", shape),
        (f"one-time render, first / warm (median of {args.warm})", render),
        ("per subscriber: personalise (split-and-join)", f"{personalise * 1e6:.1f} us"),
        ("per subscriber: MIME message, unsigned", f"{build * 1e6:.1f} us"),
        ("per subscriber: DKIM signing (signed - unsigned)", f"{(signed - build) * 1e6:.1f} us"),
        ("  of which the RSA-2048 signature alone", f"{rsa_alone * 1e6:.1f} us"),
        ("  of which the body's sha256 alone", f"{hash_alone * 1e6:.1f} us"),
        ("per subscriber: complete signed message", f"{signed * 1e6:.1f} us"),
        (f"{count:,} signed messages", f"{wall:.1f} s wall, {cpu:.1f} s CPU"),
        ("messages/s (wall clock)", f"{count / wall:,.0f}"),
        ("messages/s per core (CPU time)", f"{count / cpu:,.0f}  (goal >= 2,000)"),
        ("  ceiling set by the RSA-2048 signature alone", f"{1 / rsa_alone:,.0f}"),
        ("peak RSS", f"{peak_rss:.0f} MiB"),
        ("baseline: dkimpy signing per message", dkimpy),
        (f"{variants} variants (language x sections): render", f"{variants_render:.2f} s"),
        (f"{variants} variants: per subscriber, signed",
         f"{variants_each * 1e6:.1f} us ({variants_each / (cpu / count):.2f}x one variant; "
         "goal <= 1.5x)"),
        (f"{variants} variants: {count:,} messages", f"{variants_wall:.1f} s wall"),
        (f"{variants} variants: peak RSS", f"{variants_rss:.0f} MiB"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"bench/render.py on Python {sys.version.split()[0]}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def primitive_costs(issue: PreparedIssue, person: Recipient) -> tuple[float, float]:
    """The two costs signing can't avoid, measured alone: RSA-2048 over a header-sized
    input, and sha256 over one message body."""
    assert issue.signer is not None
    key, header_data = issue.signer.key, b"h" * 700
    body = issue.message_for(person).split(b"\r\n\r\n", 1)[1]
    rounds = 500
    start = time.process_time()
    for _ in range(rounds):
        key.sign(header_data, padding.PKCS1v15(), hashes.SHA256())
    rsa_alone = (time.process_time() - start) / rounds
    start = time.process_time()
    for _ in range(rounds):
        hashlib.sha256(body).digest()
    return rsa_alone, (time.process_time() - start) / rounds


def dkimpy_cost(issue: PreparedIssue, people: list[Recipient], key_path: Path) -> float:
    """dkimpy's signing time per message over the same messages (the baseline)."""
    import dkim

    unsigned = replace(issue, signer=None)
    messages = [unsigned.message_for(person) for person in people]
    key = key_path.read_bytes()
    headers = [
        b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe",
        b"list-unsubscribe-post", b"mime-version", b"content-type",
    ]  # fmt: skip
    start = time.process_time()
    for message in messages:
        dkim.sign(message, b"k1", b"kabar.example.id", key, include_headers=headers,
                  canonicalize=(b"relaxed", b"relaxed"))  # fmt: skip
    return (time.process_time() - start) / len(messages)


if __name__ == "__main__":
    main()
