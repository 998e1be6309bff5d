"""The web app `kabar serve` runs. Each area contributes a list of routes; this module
only puts them together."""

from __future__ import annotations

from starlette.applications import Starlette

from kabar.config import Config
from kabar.deliver.storage import FeedStorage


def create_app(config: Config, *, storage: FeedStorage | None = None) -> Starlette:
    from kabar.web import feeds

    storage = storage or FeedStorage.from_config(config)
    app = Starlette(routes=[*feeds.routes(config, storage)])
    app.state.config = config
    app.state.storage = storage
    return app
