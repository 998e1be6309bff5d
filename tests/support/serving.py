"""Servers the tests run on 127.0.0.1: a free port, and `kabar serve`'s app in uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    """A port nothing listens on now (aiosmtpd's Controller cannot take port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def uvicorn_thread(
    app: ASGIApp, port: int, *, log_level: str = "warning", **settings: Any
) -> Iterator[str]:
    """`app` in uvicorn on a thread of its own, at the base URL yielded, until the end."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, **settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
