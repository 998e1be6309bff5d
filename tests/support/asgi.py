"""Requests to a kabar ASGI app through httpx's ASGI transport: real HTTP semantics, no
socket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.types import ASGIApp

BASE = "https://kabar.example.id"


class AsgiClient:
    """One request at a time. `origin`: send the Origin header a browser sends when it
    posts kabar's own form (webhook senders send none)."""

    def __init__(self, app: ASGIApp, *, origin: bool = True) -> None:
        self.app = app
        self.origin = {"Origin": BASE} if origin else {}

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            headers = {**self.origin, **options.pop("headers", {})}
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                return await client.request(method, path, headers=headers, **options)

        return asyncio.run(send())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)
