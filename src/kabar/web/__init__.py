"""The web app `kabar serve` runs. Each area contributes a list of routes; this module
only puts them together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from kabar.config import Config
from kabar.deliver.storage import FeedStorage
from kabar.store import Store


def create_app(
    config: Config, *, storage: FeedStorage | None = None, store: Store | None = None
) -> Starlette:
    """Feeds (and the archive) from feed storage; subscribe and unsubscribe pages; the
    security headers on every response."""
    from kabar.web import feeds, inbound, subscribe
    from kabar.web.headers import SecurityHeaders

    storage = storage or FeedStorage.from_config(config)
    closers: list[Callable[[], None]] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        for close in closers:
            close()

    app = Starlette(
        routes=[
            *feeds.routes(config, storage),
            *subscribe.routes(config, store, closers=closers),
            *inbound.routes(config, store, closers=closers),  # relays' bounce webhooks
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.storage = storage
    return app
