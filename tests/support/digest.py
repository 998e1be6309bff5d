"""Helpers shared by the digest, mail and locale tests."""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kabar import config as config_module
from kabar.config import Config, Related
from kabar.digest import PreparedIssue, prepare_issue
from kabar.ingest import ingest_path
from kabar.model import Article, Recipient, article_id
from kabar.related.fallback import PublisherLinks
from kabar.store import Store

from .project import SEED_AS_OF, WriteConfig

RECIPIENT = Recipient(
    subscriber_id="sub-1",
    email="budi@example.com",
    name="Budi Santoso",
    unsubscribe_url="https://kabar.example.id/u/TOKEN-1?list=pembaca&x=1",
    unsubscribe_mailto="mailto:unsubscribe+TOKEN-1@kabar.example.id",
    preferences_url="https://kabar.example.id/p/TOKEN-1",
)

DIGEST: dict[str, Any] = {
    "id": "harian",
    "list": "pembaca",
    "sources": ["seeds"],
    "subject": "Kabar pagi, {date}",
    "preheader": "Berita pilihan hari ini",
    "window": "24h",
    "max_items": 12,
}


def digest_config(write_config: WriteConfig, **overrides: Any) -> Config:
    """BASE_CONFIG with one digest, `harian`, updated with `overrides` (top-level keys
    prefixed `top_` go to the config itself)."""
    top = {key[4:]: value for key, value in overrides.items() if key.startswith("top_")}
    digest = {**DIGEST, **{k: v for k, v in overrides.items() if not k.startswith("top_")}}
    return config_module.load(write_config(digests=[digest], **top))


def make_article(number: int, *, when: datetime = SEED_AS_OF, **fields: Any) -> Article:
    guid = f"https://kabar.example.id/read/{number}"
    values: dict[str, Any] = {
        "id": article_id("seeds", guid),
        "guid": guid,
        "source": "seeds",
        "url": guid,
        "title": f"Berita nomor {number}",
        "published": when - timedelta(hours=number),
        "updated": when - timedelta(hours=number),
        "summary": f"Ringkasan berita nomor {number}.",
        "section": "Dunia",
        **fields,
    }
    return Article(**values)


def ingest_seed(config: Config, store: Store) -> None:
    report = ingest_path(config, store, config.resolve("seeds"), "seeds", as_of=SEED_AS_OF)
    assert report.articles == 11 and not report.failures


@dataclass
class FakeRelated:
    """A related-news provider for unit tests: a function from article to items."""

    items_for: Callable[[Article], Sequence[Any]]
    calls: int = 0
    excluded: list[frozenset[str]] = field(default_factory=list)

    def related(
        self,
        article: Article,
        *,
        before: datetime,
        settings: Related,
        exclude: Collection[str] = (),
    ) -> Sequence[Any]:
        self.calls += 1
        self.excluded.append(frozenset(exclude))
        return self.items_for(article)


def publisher_links(config: Config, store: Store) -> PublisherLinks:
    """The engine-independent provider, so golden files don't change with the engine."""
    return PublisherLinks(store)


def seed_issue(config: Config, store: Store, **kwargs: Any) -> PreparedIssue:
    """The seed's issue: all 11 articles (the 2021 page and its 10 related items)."""
    issue = prepare_issue(
        config,
        store,
        config.digest("harian"),
        issue_key="harian:pembaca:2024-05-01",
        issue_time=SEED_AS_OF,
        since=datetime.fromisoformat("2021-01-01T00:00:00+07:00"),
        related=kwargs.pop("related", publisher_links),
        **kwargs,
    )
    assert issue is not None
    return issue


def rsa_key_pem(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def dns_for(pem: bytes, selector: str = "k1", domain: str = "kabar.example.id") -> Any:
    """A dkimpy `dnsfunc` that publishes the public half of `pem`."""
    key = serialization.load_pem_private_key(pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}".encode()
    name = f"{selector}._domainkey.{domain}."

    def dnsfunc(query: bytes, timeout: int = 5) -> bytes | None:
        return record if query.decode() in (name, name.rstrip(".")) else None

    return dnsfunc
