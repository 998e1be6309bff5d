"""The HTTP API under /api/v1, every endpoint over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kabar.api.tokens import Tokens
from kabar.cli import cli
from kabar.config import Config
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.store.tables import api_tokens, webhook_events
from kabar.subscribers import Subscribers
from kabar.suppression import Suppressions

from ..support.ops import article, ops_config, sample, serving
from ..support.project import WriteConfig

ALL = ["articles:write", "subscribers:read", "subscribers:write", "issues:read"]


@pytest.fixture
def config(write_config: WriteConfig, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KABAR_SECRET", "rahasia-uji-api")
    return ops_config(write_config, database_url)


@pytest.fixture
def api(config: Config, store: Store) -> Iterator[httpx.Client]:
    with serving(config, store) as client:
        yield client


def bearer(store: Store, *scopes: str) -> dict[str, str]:
    _, text = Tokens(store.engine).create(list(scopes or ALL), "uji")
    return {"Authorization": f"Bearer {text}"}


def events(store: Store) -> list[tuple[str, dict[str, Any]]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(webhook_events.c.type, webhook_events.c.payload).order_by(
                webhook_events.c.created
            )
        )
        return [(kind, json.loads(payload)["data"]) for kind, payload in rows]


# --- tokens ------------------------------------------------------------------------------------


def test_tokens_are_shown_once_stored_hashed_listed_and_revoked(
    config: Config, store: Store, api: httpx.Client
) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli, ["-c", str(config.path), "tokens", "create", "--scope", "issues:read",
              "--name", "cms", "--json"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    text = created["token"]
    assert text.startswith("kbr_") and created["scopes"] == ["issues:read"]
    with store.engine.connect() as connection:
        stored = connection.execute(select(api_tokens)).one()
    assert text.split("_", 2)[2] not in str(tuple(stored))  # only a hash of the secret
    assert api.get("/api/v1/issues", headers={"Authorization": f"Bearer {text}"}).status_code == 200

    listed = runner.invoke(cli, ["-c", str(config.path), "tokens", "list", "--json"])
    assert json.loads(listed.stdout)["id"] == created["id"] and text not in listed.stdout
    revoked = runner.invoke(cli, ["-c", str(config.path), "tokens", "revoke", created["id"]])
    assert revoked.exit_code == 0
    answer = api.get("/api/v1/issues", headers={"Authorization": f"Bearer {text}"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    again = runner.invoke(cli, ["-c", str(config.path), "tokens", "revoke", created["id"]])
    assert again.exit_code == 1


def test_a_missing_or_altered_token_is_401_and_a_wrong_scope_403(
    store: Store, api: httpx.Client
) -> None:
    headers = bearer(store, "issues:read")
    assert api.get("/api/v1/issues").json()["field"] == "Authorization"
    assert api.get("/api/v1/issues").status_code == 401
    altered = {"Authorization": headers["Authorization"][:-2] + "xx"}
    assert api.get("/api/v1/issues", headers=altered).status_code == 401
    wrong = api.post("/api/v1/sources/cms/articles", json=article(1), headers=headers)
    assert wrong.status_code == 403
    assert wrong.json() == {"error": "the token lacks the scope articles:write",
                            "field": "Authorization"}  # fmt: skip
    assert api.get("/api/v1/subscribers", headers=headers).status_code == 403
    assert not list(store.articles(limit=1))


def test_requests_are_limited_per_token(
    write_config: WriteConfig, database_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", "rahasia-uji-api")
    config = ops_config(write_config, database_url, api={"rate_limit": 3, "rate_window": "1h"})
    first, second = bearer(store, "issues:read"), bearer(store, "issues:read")
    with serving(config, store) as api:
        codes = [api.get("/api/v1/issues", headers=first).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert api.get("/api/v1/issues", headers=second).status_code == 200  # its own window


# --- the OpenAPI document ----------------------------------------------------------------------


def test_the_openapi_document_describes_every_route(api: httpx.Client) -> None:
    document = api.get("/api/v1/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/sources/{source}/articles", "/subscribers", "/subscribers/{id}", "/issues",
        "/issues/{key}",
    }  # fmt: skip
    assert document["servers"] == [{"url": "https://kabar.example.id/api/v1"}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation["security"][0]["bearer"], (path, method)
            assert "403" in operation["responses"]


# --- articles ----------------------------------------------------------------------------------


def test_posted_articles_are_stored_indexed_and_fed(
    config: Config, store: Store, api: httpx.Client
) -> None:
    headers = bearer(store, "articles:write")
    before = sample("kabar_ingest_articles_total", source="cms", result="inserted")
    one = api.post("/api/v1/sources/cms/articles", json=article(1), headers=headers)
    many = api.post(
        "/api/v1/sources/cms/articles",
        json={"articles": [article(2), article(3, title="Gempa di Sulawesi")]},
        headers=headers,
    )
    assert one.status_code == 200 and many.status_code == 200, many.text
    body = many.json()
    assert body["inserted"] == 2 and body["errors"] == []
    assert len(body["stored"]) == 2 and all(store.get(i) for i in body["stored"])
    assert store.get(one.json()["stored"][0]).title == "Berita nomor 1 dari CMS"
    assert sample("kabar_ingest_articles_total", source="cms", result="inserted") == before + 3
    from kabar.related.persist import current

    api.app.state.api.terms_stored()  # type: ignore[attr-defined]
    assert set(current(store, body["stored"])) == set(body["stored"])  # terms for related news
    app: Any = api.app  # type: ignore[attr-defined]
    rebuilder = _rebuilder(app)
    assert rebuilder.idle(timeout=20)
    feed = api.get("/feeds/cms.json").json()
    assert {item["title"] for item in feed["items"]} >= {"Gempa di Sulawesi"}
    assert rebuilder.builds <= 2  # two posts close together: at most two rebuilds
    assert ("feed.updated", {"feed": "cms", "urls": [
        "https://kabar.example.id/feeds/cms.rss.xml", "https://kabar.example.id/feeds/cms.atom.xml",
        "https://kabar.example.id/feeds/cms.json"]}) in events(store)  # fmt: skip


def test_a_burst_of_posts_is_one_rebuild(config: Config, store: Store, api: httpx.Client) -> None:
    headers = bearer(store, "articles:write")
    rebuilder = _rebuilder(api.app)  # type: ignore[attr-defined]
    rebuilder.delay, rebuilder.max_wait = 3.0, 60.0
    for number in range(10):
        assert api.post("/api/v1/sources/cms/articles", json=article(number),
                        headers=headers).status_code == 200  # fmt: skip
    assert rebuilder.idle(timeout=20)
    assert rebuilder.builds == 1
    assert len(api.get("/feeds/cms.json").json()["items"]) == 10


def test_bad_records_are_named_by_index_and_field(store: Store, api: httpx.Client) -> None:
    headers = bearer(store, "articles:write")
    bad = [article(1), article(2, url="javascript:alert(1)"), {"title": "tanpa isi"},
           article(4, published="kemarin")]  # fmt: skip
    answer = api.post("/api/v1/sources/cms/articles", json=bad, headers=headers)
    assert answer.status_code == 200
    errors = answer.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "articles[1].url"), (2, "articles[2].url"), (3, "articles[3].published"),
    ]  # fmt: skip
    assert len(answer.json()["stored"]) == 1
    only_bad = api.post("/api/v1/sources/cms/articles", json=bad[1:], headers=headers)
    assert only_bad.status_code == 422 and only_bad.json()["field"] == "articles[0].url"


@pytest.mark.parametrize(
    ("path", "content", "status", "field"),
    [
        ("/api/v1/sources/cms/articles", b"{not json", 400, "body"),
        ("/api/v1/sources/cms/articles", b"42", 422, "body"),
        ("/api/v1/sources/cms/articles", b"[]", 422, "articles"),
        ("/api/v1/sources/cms/articles", b'{"articles": "x"}', 422, "articles"),
        ("/api/v1/sources/nope/articles", b"{}", 404, "source"),
    ],
)
def test_unreadable_posts_are_4xx_naming_the_field(
    store: Store, api: httpx.Client, path: str, content: bytes, status: int, field: str
) -> None:
    answer = api.post(path, content=content, headers=bearer(store, "articles:write"))
    assert (answer.status_code, answer.json()["field"]) == (status, field)
    assert not list(store.articles(limit=1))


def test_too_many_articles_in_one_post_is_413(store: Store, api: httpx.Client) -> None:
    records = [article(n) for n in range(1001)]
    answer = api.post("/api/v1/sources/cms/articles", json=records,
                      headers=bearer(store, "articles:write"))  # fmt: skip
    assert answer.status_code == 413 and answer.json()["field"] == "articles"


# --- subscribers -------------------------------------------------------------------------------


def test_subscribers_crud_and_paging(config: Config, store: Store, api: httpx.Client) -> None:
    headers = bearer(store, "subscribers:read", "subscribers:write")
    made = api.post("/api/v1/subscribers", json={"list": "pembaca", "email": "Ani@Example.com",
                                                 "name": "Ani", "locale": "en"},
                    headers=headers)  # fmt: skip
    assert made.status_code == 201, made.text
    ani = made.json()
    assert (ani["status"], ani["origin"], ani["email"]) == ("pending", "api", "Ani@example.com")
    assert ani["confirm_url"].startswith("https://kabar.example.id/subscribe/confirm/")
    stored = Subscribers(store.engine).get(ani["id"])
    assert stored is not None and stored.consent is not None
    assert stored.consent["origin"] == "api" and stored.consent["ip"]  # the CMS's address
    Suppressions(store.engine).add("blocked@example.com", reason="admin")
    refused = api.post("/api/v1/subscribers", json={"list": "pembaca",
                                                    "email": "blocked@example.com"},
                       headers=headers)  # fmt: skip
    assert refused.status_code == 409 and refused.json()["field"] == "email"
    assert api.get(f"/api/v1/subscribers/{ani['id']}", headers=headers).json()["name"] == "Ani"
    changed = api.patch(f"/api/v1/subscribers/{ani['id']}", json={"name": "Ani S."},
                        headers=headers)  # fmt: skip
    assert changed.status_code == 200 and changed.json()["name"] == "Ani S."
    for n in range(5):
        api.post("/api/v1/subscribers", json={"list": "pembaca", "email": f"p{n}@example.com"},
                 headers=headers)  # fmt: skip
    seen: list[str] = []
    cursor = ""
    while True:
        page = api.get("/api/v1/subscribers", params={"limit": 2, "after": cursor},
                       headers=headers).json()  # fmt: skip
        seen += [s["id"] for s in page["subscribers"]]
        if page["next"] is None:
            break
        cursor = page["next"]
    assert len(seen) == 6 == len(set(seen)) and seen == sorted(seen)
    assert api.delete(f"/api/v1/subscribers/{ani['id']}", headers=headers).status_code == 204
    assert api.get(f"/api/v1/subscribers/{ani['id']}", headers=headers).status_code == 404
    assert [kind for kind, _ in events(store)].count("subscriber.created") == 6


def test_an_address_that_left_comes_back_only_through_confirmation(
    store: Store, api: httpx.Client
) -> None:
    headers = bearer(store, "subscribers:read", "subscribers:write")
    subscribers = Subscribers(store.engine)
    gone, _ = subscribers.add("pembaca", "budi@example.com", status="active")
    subscribers.set_status(gone.id, "unsubscribed")
    again = api.post("/api/v1/subscribers", json={"list": "pembaca", "email": "budi@example.com"},
                     headers=headers)  # fmt: skip
    assert again.status_code == 201
    assert again.json()["status"] == "pending" and "confirm_url" in again.json()
    forced = api.patch(f"/api/v1/subscribers/{gone.id}", json={"status": "active"},
                       headers=headers)  # fmt: skip
    assert forced.status_code == 409 and forced.json()["field"] == "status"
    assert subscribers.get(gone.id).status == "pending"  # type: ignore[union-attr]
    leave = api.patch(f"/api/v1/subscribers/{gone.id}", json={"status": "unsubscribed"},
                      headers=headers)  # fmt: skip
    assert leave.json()["status"] == "unsubscribed"
    assert ("subscriber.unsubscribed", "budi@example.com") in [
        (kind, data.get("email")) for kind, data in events(store)
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"list": "pembaca", "email": "bukan alamat"}, 422, "email"),
        ({"list": "pembaca"}, 422, "email"),
        ({"list": "tidak-ada", "email": "a@example.com"}, 422, "list"),
        ({"list": "pembaca", "email": "a@example.com", "name": 5}, 422, "name"),
        ({"list": "pembaca", "email": "a@example.com", "locale": "xx-!!"}, 422, "locale"),
        (["list"], 422, "body"),
    ],
)
def test_bad_subscribers_are_422_naming_the_field(
    store: Store, api: httpx.Client, body: Any, status: int, field: str
) -> None:
    answer = api.post("/api/v1/subscribers", json=body, headers=bearer(store, "subscribers:write"))
    assert (answer.status_code, answer.json()["field"]) == (status, field), answer.text
    assert not list(Subscribers(store.engine).iter())


def test_a_duplicate_is_409_and_bad_paging_422(store: Store, api: httpx.Client) -> None:
    headers = bearer(store)
    body = {"list": "pembaca", "email": "c@example.com"}
    assert api.post("/api/v1/subscribers", json=body, headers=headers).status_code == 201
    assert api.post("/api/v1/subscribers", json=body, headers=headers).status_code == 409
    bad = api.get("/api/v1/subscribers", params={"limit": "0"}, headers=headers)
    assert (bad.status_code, bad.json()["field"]) == (422, "limit")
    bad = api.get("/api/v1/subscribers", params={"status": "x"}, headers=headers)
    assert (bad.status_code, bad.json()["field"]) == (422, "status")
    unknown = api.patch("/api/v1/subscribers/nope", json={}, headers=headers)
    assert unknown.status_code == 404


# --- issues ------------------------------------------------------------------------------------


def test_issues_are_listed_with_the_counts_kabar_status_shows(
    config: Config, store: Store, api: httpx.Client
) -> None:
    from datetime import UTC, datetime

    ledger = Ledger(store.engine)
    now = datetime.now(UTC)
    ledger.create_issue("harian:pembaca:2026-12-05", digest_id="harian", list_id="pembaca",
                        period="2026-12-05", issue_time=now, now=now)  # fmt: skip
    headers = bearer(store, "issues:read")
    listed = api.get("/api/v1/issues", headers=headers).json()["issues"]
    assert [issue["key"] for issue in listed] == ["harian:pembaca:2026-12-05"]
    assert listed[0]["counts"] == {"audience": 0, "sent": 0, "deferred": 0, "failed": 0,
                                   "bounced": 0, "complained": 0, "skipped": 0,
                                   "pending": 0}  # fmt: skip
    status = CliRunner().invoke(cli, ["-c", str(config.path), "status", "--json"])
    shown = json.loads(status.stdout)
    assert {k: shown[k] for k in listed[0]["counts"]} == listed[0]["counts"]
    one = api.get("/api/v1/issues/harian:pembaca:2026-12-05", headers=headers)
    assert one.json()["state"] == "planned"
    assert api.get("/api/v1/issues/nope", headers=headers).status_code == 404


def _rebuilder(app: Any) -> Any:
    return app.state.api.rebuilder
