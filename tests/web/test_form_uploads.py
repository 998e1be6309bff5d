"""The web forms read only the fields they ask for: a file upload is refused before it
is read, so a client cannot make kabar spool hundreds of megabytes to disk per request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from kabar.store import Store
from kabar.subscribers import Subscribers
from kabar.web import create_app

from ..support.delivery_setup import SECRET
from ..support.project import WriteConfig
from .test_subscribe_form import BASE, ORIGIN, PROXY, make_config, recipients


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


def test_subscribe_refuses_a_file_upload_and_mails_nobody(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config)

    async def run(store: Store) -> httpx.Response:
        app = create_app(config, store=store)
        transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.post(
                "/subscribe",
                data={"email": "upload@example.com"},
                files={"file": ("big.bin", b"a" * (2 << 20))},
                headers=ORIGIN,
            )

    with Store.open(config.database_url) as store:
        answer = asyncio.run(run(store))
        assert answer.status_code == 400
        assert Subscribers(store.engine).find("pembaca", "upload@example.com") is None
    assert recipients(project) == []
