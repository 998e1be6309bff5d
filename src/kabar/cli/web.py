"""kabar serve: feed storage over HTTP."""

from __future__ import annotations

import click

from kabar.cli.app import App, pass_app


@click.command()
@click.option("--host", help="Interface to listen on [default: web.host].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: web.port].")
@pass_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Serve feed storage over HTTP: feeds under /feeds/ with ETag, Last-Modified, 304s
    and gzip, and an index page with autodiscovery links."""
    import uvicorn

    from kabar.web import create_app

    config = app.config
    uvicorn.run(
        create_app(config),
        host=host or config.web.host,
        port=port or config.web.port,
        log_level="info",
        # kabar reads X-Forwarded-For itself, and only from web.trusted_proxies: uvicorn's
        # own handling would trust any local peer and let a client pick its address.
        proxy_headers=False,
    )
