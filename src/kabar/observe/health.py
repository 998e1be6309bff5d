"""Liveness and readiness over HTTP, for systemd, container health checks and balancers.

`GET /healthz` answers 200 while the process serves requests: it checks nothing else, so a
database outage never gets a healthy process restarted. `GET /readyz` checks what serving
needs (the database, the broker in dramatiq mode, feed storage) and answers 503 naming
each that failed, so a balancer sends no traffic to it meanwhile. Each check has a short
deadline and runs in a thread: a hung database cannot hang the event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.config import Config
from kabar.publish.storage import FeedStorage

CHECK_DEADLINE = 5.0  # seconds per check
Check = Callable[[], None]  # raises when what it checks is not usable


def database_check(engine: Callable[[], Any]) -> Check:
    def check() -> None:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def broker_check(config: Config) -> Check:
    """Connect to the broker the workers read (dramatiq mode only)."""

    def check() -> None:
        url = config.engine.broker
        if url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(url, socket_timeout=CHECK_DEADLINE,
                                          socket_connect_timeout=CHECK_DEADLINE)  # fmt: skip
            try:
                client.ping()
            finally:
                client.close()
            return
        import pika  # type: ignore[import-untyped]

        parameters = pika.URLParameters(url)
        parameters.socket_timeout = CHECK_DEADLINE
        parameters.blocked_connection_timeout = CHECK_DEADLINE
        pika.BlockingConnection(parameters).close()

    return check


def storage_check(storage: FeedStorage) -> Check:
    """The feed folder exists (and is writable, when local)."""

    def check() -> None:
        if storage.is_local:
            if not os.path.isdir(storage.root):
                raise OSError(f"{storage.root} is not a folder")
            if not os.access(storage.root, os.W_OK | os.X_OK):
                raise OSError(f"{storage.root} is not writable")
            return
        storage.fs.invalidate_cache(storage.root)
        storage.fs.ls(storage.root)

    return check


async def run_checks(checks: dict[str, Check]) -> dict[str, str]:
    """Each check's outcome: "ok", or why it failed."""

    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(asyncio.to_thread(check), CHECK_DEADLINE)
        except TimeoutError:
            return f"no answer within {CHECK_DEADLINE:g}s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return "ok"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def routes(config: Config, storage: FeedStorage, engine: Callable[[], Any]) -> list[BaseRoute]:
    """/healthz and /readyz; `engine` gives the database engine (opened on first use)."""
    checks: dict[str, Check] = {"database": database_check(engine)}
    if config.engine.mode == "dramatiq":
        checks["broker"] = broker_check(config)
    checks["feed_storage"] = storage_check(storage)
    started = time.monotonic()

    async def healthz(request: Request) -> Response:
        uptime = round(time.monotonic() - started, 1)
        return JSONResponse({"status": "ok", "uptime_seconds": uptime},
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    async def readyz(request: Request) -> Response:
        results = await run_checks(checks)
        failed = sorted(name for name, outcome in results.items() if outcome != "ok")
        body = {
            "status": "ok" if not failed else "unavailable: " + ", ".join(failed),
            "checks": results,
        }
        return JSONResponse(body, status_code=503 if failed else 200,
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]
