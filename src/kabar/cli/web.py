"""kabar serve: feed storage over HTTP."""

from __future__ import annotations

import socket

import click

from kabar.cli.app import App, fail, pass_app


@click.command()
@click.option("--host", help="Interface to listen on [default: web.host].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: web.port].")
@pass_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Serve feed storage over HTTP: feeds under /feeds/ with ETag, Last-Modified, 304s
    and gzip, and an index page with autodiscovery links; the subscribe pages; /healthz,
    /readyz and /metrics; the HTTP API under /api/v1 (tokens: kabar tokens create).

    Exits 2 with one line when the database cannot be opened, or the address cannot be
    listened on (a port in use).
    """
    import uvicorn

    from kabar.web import create_app

    config = app.config
    _ = app.store  # a database it cannot open: one line and exit 2, before serving 500s
    host = host or config.web.host
    port = port or config.web.port
    listener = _listen(host, port)
    click.echo(f"serving {config.storage.feeds} at http://{host}:{port}/feeds/", err=True)
    # kabar reads X-Forwarded-For itself, and only from web.trusted_proxies: uvicorn's own
    # handling would trust any local peer and let a client pick its address.
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="info", proxy_headers=False)
    )
    server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """The bound socket, made here so a busy port is one clear line, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except (socket.gaierror, UnicodeError) as exc:
        listener.close()
        fail(f"--host: cannot listen on {host!r}: {getattr(exc, 'strerror', None) or exc}")
    except OSError as exc:
        listener.close()
        fail(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}")
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener
