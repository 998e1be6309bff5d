"""Logging: rich in a terminal, one plain `time level name: message` line otherwise."""

from __future__ import annotations

import logging
import sys


def setup(verbosity: int = 0, *, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbosity > 0 else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=verbosity > 0, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"
            )
        )
    root = logging.getLogger("kabar")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Libraries speak only when something is wrong.
    for noisy in ("alembic", "httpx", "apscheduler", "aiosmtplib", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
