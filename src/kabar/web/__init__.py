"""The web app `kabar serve` runs. Each area contributes a list of routes; this module
only puts them together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from kabar.config import Config
from kabar.publish.storage import FeedStorage
from kabar.store import Store


def create_app(
    config: Config, *, storage: FeedStorage | None = None, store: Store | None = None
) -> Starlette:
    """Feeds (and the archive) from feed storage; subscribe and unsubscribe pages; health,
    metrics and the HTTP API; the relays' bounce webhooks; the security headers on every
    response."""
    from kabar.web import feeds, inbound, subscribe
    from kabar.web.headers import SecurityHeaders

    storage = storage or FeedStorage.from_config(config)
    closers: list[Callable[[], None]] = []
    operations, api = _operations_routes(config, storage, store, closers)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        for close in closers:
            close()

    app = Starlette(
        routes=[
            *feeds.routes(config, storage),
            *subscribe.routes(config, store, closers=closers),
            *operations,
            *inbound.routes(config, store, closers=closers),  # relays' bounce webhooks
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.storage = storage
    app.state.api = api
    return app


def _operations_routes(
    config: Config, storage: FeedStorage, store: Store | None, closers: list[Callable[[], None]]
) -> tuple[list[BaseRoute], Any]:
    """/healthz, /readyz, /metrics and /api/v1, sharing one store opened on first use;
    and the API (its feed rebuilder is waited for in tests and benchmarks)."""
    from kabar.api import routes as api_routes
    from kabar.observe import health
    from kabar.observe.metrics import metrics_routes
    from kabar.observe.shared import SharedStore

    shared = SharedStore(config, store)
    api = api_routes.Api(config, shared, storage)
    closers.extend([api.close, shared.close])
    routes = [
        *health.routes(config, storage, shared.engine),
        *metrics_routes(),
        Mount("/api/v1", routes=api.routes()),
    ]
    return routes, api
