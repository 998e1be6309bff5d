"""Shared by the operations tests: a project with a JSON source the CMS posts to, a feed
of it, and `kabar serve`'s app in uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client import REGISTRY

from kabar import config as config_module
from kabar.config import Config
from kabar.store import Store
from kabar.web import create_app

from .project import WriteConfig
from .serving import free_port, uvicorn_thread

CMS_SOURCE = {"id": "cms", "kind": "json", "path": "cms/"}
CMS_FEED = {"id": "cms", "title": "Dari CMS", "sources": ["cms"], "archive": False}


def ops_config(write_config: WriteConfig, database_url: str, **overrides: Any) -> Config:
    from .project import BASE_CONFIG

    sources = [*BASE_CONFIG["sources"], CMS_SOURCE]
    settings: dict[str, Any] = {
        "storage": {"database": database_url, "feeds": "public/"},
        "sources": sources,
        "feeds": [CMS_FEED],
        "web": {"base_url": "https://kabar.example.id", "secret_env": "KABAR_SECRET"},
        "api": {"rebuild_delay": "100ms"},
        **overrides,
    }
    path = write_config(**settings)
    (path.parent / "cms").mkdir(exist_ok=True)
    (path.parent / "public").mkdir(exist_ok=True)
    return config_module.load(path)


@contextmanager
def serving(config: Config, store: Store | None = None) -> Iterator[httpx.Client]:
    """`kabar serve`'s app in uvicorn on 127.0.0.1, and a client for it."""
    app = create_app(config, store=store)
    with (
        uvicorn_thread(app, free_port(), lifespan="on") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


def sample(name: str, **labels: str) -> float:
    """A metric's current value in this process (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def article(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "url": f"https://kabar.example.id/cms/{number}",
        "title": f"Berita nomor {number} dari CMS",
        "body": f"<p>Isi berita {number}: banjir di Jakarta, pemerintah membuka posko.</p>",
        "published": "2026-12-05T08:00:00+07:00",
        "section": "Metro",
        **fields,
    }
