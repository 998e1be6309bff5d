"""Projects for delivery tests: a config sending to a local SMTP sink (or the outbox), the
seed's articles in the store, and a list of subscribers."""

from __future__ import annotations

import asyncio
from typing import Any

from kabar import config as config_module
from kabar.config import Config
from kabar.deliver import open_transport
from kabar.deliver.issue import IssueRunner, Plan, plan_issue
from kabar.deliver.send import utcnow
from kabar.ingest import ingest_source
from kabar.ledger import Issue, Ledger
from kabar.store import Store
from kabar.subscribers import Subscribers

from .project import SEED_AS_OF, WriteConfig

SECRET = "uji-rahasia-tautan"  # the link-signing secret tests put in KABAR_SECRET

DIGEST: dict[str, Any] = {
    "id": "harian",
    "list": "pembaca",
    "sources": ["seeds"],
    "subject": "Kabar pagi, {date}",
    "window": "10000d",  # the seed is from 2021 and 2024: keep all of it in the window
    "skip_if_empty": False,
}


def delivery_config(
    write_config: WriteConfig,
    *,
    port: int | None = None,
    database_url: str | None = None,
    smtp: dict[str, Any] | None = None,
    digest: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    **delivery: Any,
) -> Config:
    """SMTP to 127.0.0.1:port (or the outbox when port is None), fast retries and leases."""
    settings: dict[str, Any] = {
        "transport": "outbox" if port is None else "smtp",
        "retry_backoff": "50ms",
        "retry_backoff_max": "200ms",
        "lease": "2s",
        "chunk_size": 4,
        **delivery,
    }
    if port is not None:
        settings["smtp"] = {
            "host": "127.0.0.1", "port": port, "starttls": False, "connections": 2,
            "timeout": "2s", "max_attempts": 3, "rate_per_second": 1000, **(smtp or {}),
        }  # fmt: skip
    storage = {"database": database_url or "sqlite:///var/kabar.db", "feeds": "public/"}
    path = write_config(
        storage=storage,
        digests=[{**DIGEST, **(digest or {})}],
        delivery=settings,
        web={"base_url": "https://kabar.example.id", "secret_env": "KABAR_SECRET"},
        **({"engine": engine} if engine else {}),
    )
    return config_module.load(path)


def prepare_store(config: Config, store: Store, audience: int) -> list[str]:
    """Ingest the seed and add `audience` active subscribers; their addresses."""
    ingest_source(config, store, config.source("seeds"), as_of=SEED_AS_OF)
    subscribers = Subscribers(store.engine)
    emails = [f"pembaca{n:03d}@example.com" for n in range(audience)]
    for n, email in enumerate(emails):
        subscribers.add("pembaca", email, name=f"Pembaca {n}", locale="id" if n % 2 else "en")
    return emails


def plan_now(config: Config, store: Store) -> Plan:
    return plan_issue(
        config, Ledger(store.engine), config.digest("harian"), now=utcnow(), at_once=True
    )


def send_now(config: Config, store: Store, *, wait: bool = True) -> Issue | None:
    """What `kabar send harian --now` does, in this process."""

    async def run() -> Issue | None:
        runner = IssueRunner(config, store, open_transport(config), secret=SECRET.encode())
        try:
            plan = plan_now(config, store)
            runner.create(plan)
            return await runner.run(plan.key, wait=wait)
        finally:
            await runner.close()

    return asyncio.run(run())
