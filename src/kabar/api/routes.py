"""The /api/v1 routes. Every answer is JSON; an error is `{"error": message, "field":
name-or-null}` with a 4xx status: 400 unreadable body, 401 no or bad token, 403 a scope
the token lacks, 404 unknown thing, 409 a state the request may not change, 413 a body
too big, 422 a field with a bad value, 429 over the token's limit (with Retry-After)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.addresses import InvalidAddress, normalise_address
from kabar.api.openapi import openapi_document
from kabar.api.rebuild import FeedRebuilder
from kabar.api.tokens import Token, Tokens
from kabar.config import Config
from kabar.consent import Client, consent_record
from kabar.ledger import Ledger
from kabar.limits import DatabaseLimits, Limits, RedisLimits
from kabar.observe.metrics import API_REQUESTS
from kabar.observe.shared import SharedStore
from kabar.publish.storage import FeedStorage
from kabar.store.tables import subscribers as subscribers_table
from kabar.subscribers import (
    LEFT,
    STATUSES,
    Links,
    Status,
    Subscriber,
    Subscribers,
    SuppressedAddress,
    link_secret,
    normalise_locale,
)

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024  # bytes: 1000 long articles fit
MAX_PAGE = 500
Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error_response(error: ApiError) -> JSONResponse:
    response = JSONResponse({"error": error.message, "field": error.field}, error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kabar"'
    return response


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str
    scope: str | None  # None: no token needed (the OpenAPI document)
    handler: Callable[[Request, Token | None], Awaitable[Any]]
    status: int = 200


class Api:
    """The API's routes and what they share (store, limits, the feed rebuilder)."""

    def __init__(self, config: Config, shared: SharedStore, storage: FeedStorage) -> None:
        self.config = config
        self.shared = shared
        self.storage = storage
        self._limits: Limits | None = None
        self._links: Links | None = None
        self.rebuilder = FeedRebuilder(
            self._build_feeds, delay=config.api.rebuild_delay.total_seconds()
        )
        self._terms: Any = None  # kabar.related.worker.TermsWorker, on the first post
        self._terms_lock = threading.Lock()

    def close(self) -> None:
        self.rebuilder.close()
        with self._terms_lock:
            if self._terms is not None:
                self._terms.close()
                self._terms = None
        if isinstance(self._limits, RedisLimits):
            self._limits.close()

    # --- shared parts ----------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        if self._limits is None:
            engine = self.config.engine
            if engine.mode == "dramatiq" and engine.limiter:
                self._limits = RedisLimits(engine.limiter, f"kabar:{engine.queue}:api:")
            else:
                self._limits = DatabaseLimits(self.shared.engine())
        return self._limits

    @property
    def links(self) -> Links:
        if self._links is None:
            self._links = Links(self.config, link_secret(self.config, self.shared.engine()))
        return self._links

    def _add_terms(self, articles: list[Any]) -> None:
        """Posted articles' terms go to a second process that lives as long as the app,
        so analysing one post overlaps storing the next (kabar.related.worker); a store
        without a file (an in-memory SQLite) analyses them here."""
        if not articles:
            return
        with self._terms_lock:
            if self._terms is None:
                from kabar.related import RelatedEngine
                from kabar.related.worker import TermsWorker

                store = self.shared.store
                fallback = RelatedEngine.open(self.config, store)
                url = store.engine.url
                if url.database in (None, "", ":memory:"):
                    fallback.add(articles)
                    return
                self._terms = TermsWorker(url.render_as_string(hide_password=False), fallback)
            self._terms.add(articles)

    def terms_stored(self) -> None:
        """Wait until the posted articles' terms are stored (tests, benchmarks)."""
        with self._terms_lock:
            if self._terms is not None:
                self._terms.wait()

    def _build_feeds(self, feed_ids: list[str]) -> None:
        from kabar.publish.feeds import build_feeds

        report = build_feeds(self.config, self.shared.store, self.storage, feed_ids)
        log.info("after API posts: %s", report.describe())

    def routes(self) -> list[BaseRoute]:
        endpoints = [
            Endpoint("/openapi.json", "GET", None, self.openapi),
            Endpoint("/sources/{source}/articles", "POST", "articles:write", self.post_articles),
            Endpoint("/subscribers", "GET", "subscribers:read", self.list_subscribers),
            Endpoint("/subscribers", "POST", "subscribers:write", self.create_subscriber, 201),
            Endpoint("/subscribers/{id}", "GET", "subscribers:read", self.get_subscriber),
            Endpoint("/subscribers/{id}", "PATCH", "subscribers:write", self.update_subscriber),
            Endpoint(
                "/subscribers/{id}", "DELETE", "subscribers:write", self.delete_subscriber, 204
            ),
            Endpoint("/issues", "GET", "issues:read", self.list_issues),
            Endpoint("/issues/{key}", "GET", "issues:read", self.get_issue),
        ]
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        return [
            Route(path, self._dispatch(path, methods), methods=list(methods))
            for path, methods in by_path.items()
        ]

    def _dispatch(self, path: str, methods: dict[str, Endpoint]) -> Handler:
        async def handle(request: Request) -> Response:
            endpoint = methods[request.method if request.method != "HEAD" else "GET"]
            try:
                token = await self._authorise(request, endpoint.scope)
                body = await endpoint.handler(request, token)
                response: Response = (
                    Response(status_code=204) if endpoint.status == 204
                    else JSONResponse(body, endpoint.status)
                )  # fmt: skip
            except ApiError as error:
                response = error_response(error)
            response.headers["Cache-Control"] = "no-store"
            API_REQUESTS.labels(f"{endpoint.method} {path}", str(response.status_code)).inc()
            return response

        return handle

    async def _authorise(self, request: Request, scope: str | None) -> Token | None:
        if scope is None:
            return None
        kind, _, text = request.headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not text.strip():
            raise ApiError(401, "send a token: Authorization: Bearer kbr_…", "Authorization")
        tokens = Tokens(self.shared.engine())
        token = await asyncio.to_thread(tokens.verify, text.strip())
        if token is None:
            raise ApiError(401, "the token is unknown or revoked", "Authorization")
        if scope not in token.scopes:
            raise ApiError(403, f"the token lacks the scope {scope}", "Authorization")
        api = self.config.api
        allowed = await asyncio.to_thread(
            self.limits.allow, f"api:{token.id}", api.rate_limit, api.rate_window
        )
        if not allowed:
            error = ApiError(429, f"over {api.rate_limit} requests per {api.rate_window}")
            raise error
        return token

    # --- the OpenAPI document --------------------------------------------------------------

    async def openapi(self, request: Request, token: Token | None) -> Any:
        return openapi_document(self.config)

    # --- articles --------------------------------------------------------------------------

    async def post_articles(self, request: Request, token: Token | None) -> Any:
        source_id = request.path_params["source"]
        if source_id not in {source.id for source in self.config.sources}:
            known = ", ".join(s.id for s in self.config.sources) or "none"
            raise ApiError(404, f"unknown source {source_id!r} (configured: {known})", "source")
        document = await _json_body(request)
        records = _records(document)
        limit = self.config.api.max_articles
        if len(records) > limit:
            raise ApiError(413, f"{len(records)} articles in one request; at most {limit}",
                           "articles")  # fmt: skip
        if not records:
            raise ApiError(422, "no articles given", "articles")
        from kabar.ingest import ingest_records

        result = await asyncio.to_thread(
            ingest_records, self.config, self.shared.store, source_id, records,
            related=self._add_terms,
        )  # fmt: skip
        stored = result.report.stored
        if stored.inserted or stored.updated:
            from kabar.schedule import feeds_fed_by

            self.rebuilder.request(feeds_fed_by(self.config, source_id))
        errors = [
            {"index": index, "field": f"articles[{index}]" + _field_of(reason), "error": reason}
            for index, reason in result.rejected
        ]
        body = {
            "source": source_id, "stored": result.stored_ids, "inserted": stored.inserted,
            "updated": stored.updated, "unchanged": stored.unchanged,
            "duplicates": stored.duplicates, "errors": errors,
            "warnings": result.report.warnings,
        }  # fmt: skip
        if errors and not result.stored_ids and not stored.duplicates:
            first = errors[0]
            raise ApiError(422, f"no article stored: {first['error']}", str(first["field"]))
        return body

    # --- subscribers -------------------------------------------------------------------------

    async def list_subscribers(self, request: Request, token: Token | None) -> Any:
        query = request.query_params
        list_id = query.get("list")
        status = query.get("status")
        if list_id is not None:
            self._known_list(list_id, "list")
        if status is not None and status not in STATUSES:
            raise ApiError(422, f"status must be one of {', '.join(STATUSES)}", "status")
        limit = _int_param(query.get("limit"), "limit", default=100, low=1, high=MAX_PAGE)
        after = query.get("after") or ""
        statement = select(subscribers_table).order_by(subscribers_table.c.id).limit(limit + 1)
        if after:
            statement = statement.where(subscribers_table.c.id > after)
        if list_id is not None:
            statement = statement.where(subscribers_table.c.list_id == list_id)
        if status is not None:
            statement = statement.where(subscribers_table.c.status == status)

        def read() -> list[Any]:
            with self.shared.engine().connect() as connection:
                return list(connection.execute(statement))

        rows = await asyncio.to_thread(read)
        page = [_public(Subscribers.row_to_subscriber(row._mapping)) for row in rows[:limit]]
        more = len(rows) > limit
        return {"subscribers": page, "next": page[-1]["id"] if more and page else None}

    async def get_subscriber(self, request: Request, token: Token | None) -> Any:
        return _public(await self._subscriber(request))

    async def create_subscriber(self, request: Request, token: Token | None) -> Any:
        body = _object(await _json_body(request))
        list_id = _text_field(body, "list", required=True)
        mailing_list = self._known_list(list_id, "list")
        try:
            email = normalise_address(_text_field(body, "email", required=True))
        except InvalidAddress as exc:
            raise ApiError(422, f"not a valid address: {exc}", "email") from None
        name = _text_field(body, "name")
        locale = _locale_field(body)
        store = Subscribers(self.shared.engine())
        status: Status = "pending" if mailing_list.double_opt_in else "active"

        client = Client(request.client.host if request.client else "",
                        request.headers.get("user-agent", ""))  # fmt: skip
        consent = consent_record("api", now=datetime.now(UTC), client=client)

        def add() -> tuple[Subscriber, bool]:
            return store.add(list_id, email, name=name, locale=locale, status=status,
                             origin="api", consent=consent)  # fmt: skip

        try:
            subscriber, made = await asyncio.to_thread(add)
        except SuppressedAddress:
            raise ApiError(409, "the address is on the suppression list", "email") from None
        if not made and subscriber.status in LEFT:
            # Only its owner can bring back an address that left: by confirming.
            await asyncio.to_thread(
                store.set_status, subscriber.id, "pending", expected=[subscriber.status]
            )
            subscriber = store.get(subscriber.id) or subscriber
        elif not made:
            raise ApiError(409, f"{email} is already on list {list_id} ({subscriber.status}) "
                           f"as {subscriber.id}", "email")  # fmt: skip
        answer = _public(subscriber)
        if subscriber.status == "pending":
            answer["confirm_url"] = self.links.confirm_url(subscriber.id)
        return answer

    async def update_subscriber(self, request: Request, token: Token | None) -> Any:
        subscriber = await self._subscriber(request)
        body = _object(await _json_body(request))
        unknown = sorted(set(body) - {"name", "locale", "status"})
        if unknown:
            raise ApiError(422, f"unknown field {unknown[0]!r}: only name, locale and status "
                           "can change", unknown[0])  # fmt: skip
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _text_field(body, "name")
        if "locale" in body:
            changes["locale"] = _locale_field(body)
        store = Subscribers(self.shared.engine())
        if "status" in body:
            wanted = body["status"]
            if wanted != subscriber.status and wanted != "unsubscribed":
                raise ApiError(409, "the API can only unsubscribe: an address is activated "
                               "by its owner's confirmation", "status")  # fmt: skip
            if wanted == "unsubscribed":
                await asyncio.to_thread(store.set_status, subscriber.id, "unsubscribed")
        if changes:
            await asyncio.to_thread(store.update_profile, subscriber.id, **changes)
        return _public(store.get(subscriber.id) or subscriber)

    async def delete_subscriber(self, request: Request, token: Token | None) -> Any:
        subscriber = await self._subscriber(request)
        await asyncio.to_thread(Subscribers(self.shared.engine()).purge, subscriber.id)
        return None

    async def _subscriber(self, request: Request) -> Subscriber:
        subscriber_id = request.path_params["id"]
        found = await asyncio.to_thread(Subscribers(self.shared.engine()).get, subscriber_id)
        if found is None:
            raise ApiError(404, f"no subscriber {subscriber_id!r}", "id")
        return found

    def _known_list(self, list_id: str, field: str) -> Any:
        found = next((m for m in self.config.lists if m.id == list_id), None)
        if found is None:
            known = ", ".join(m.id for m in self.config.lists) or "none"
            raise ApiError(422, f"unknown list {list_id!r} (configured: {known})", field)
        return found

    # --- issues ----------------------------------------------------------------------------

    async def list_issues(self, request: Request, token: Token | None) -> Any:
        query = request.query_params
        limit = _int_param(query.get("limit"), "limit", default=20, low=1, high=MAX_PAGE)
        digest = query.get("digest")
        if digest is not None and digest not in {d.id for d in self.config.digests}:
            raise ApiError(422, f"unknown digest {digest!r}", "digest")

        def read() -> list[dict[str, Any]]:
            ledger = Ledger(self.shared.engine())
            chosen = ledger.issues(digest_id=digest, limit=limit)
            counts = ledger.counts([issue.key for issue in chosen])
            return [_issue(issue, counts[issue.key].to_dict()) for issue in chosen]

        return {"issues": await asyncio.to_thread(read)}

    async def get_issue(self, request: Request, token: Token | None) -> Any:
        key = request.path_params["key"]

        def read() -> dict[str, Any] | None:
            ledger = Ledger(self.shared.engine())
            issue = ledger.issue(key)
            return _issue(issue, ledger.counts([key])[key].to_dict()) if issue else None

        found = await asyncio.to_thread(read)
        if found is None:
            raise ApiError(404, f"no issue {key!r}", "key")
        return found


# --- reading requests ----------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"the body is over {MAX_BODY} bytes", "body")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY:
            raise ApiError(413, f"the body is over {MAX_BODY} bytes", "body")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not JSON: {exc}".splitlines()[0], "body") from None


def _records(document: Any) -> list[Any]:
    """One article object, an array of them, or {"articles": [...]} (the ingest format)."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "articles" in document:
        if not isinstance(document["articles"], list):
            raise ApiError(422, "articles: expected an array of article objects", "articles")
        return list(document["articles"])
    if isinstance(document, dict):
        return [document]
    raise ApiError(422, "expected an article object or an array of them", "body")


def _object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ApiError(422, "expected a JSON object", "body")
    return document


def _text_field(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(422, f"{name} is required", name)
        return ""
    if not isinstance(value, str):
        raise ApiError(422, f"{name}: expected a string, got {type(value).__name__}", name)
    if len(value) > 320:
        raise ApiError(422, f"{name}: at most 320 characters", name)
    return value.strip()


def _locale_field(body: dict[str, Any]) -> str:
    text = _text_field(body, "locale")
    try:
        return normalise_locale(text) if text else ""
    except ValueError as exc:
        raise ApiError(422, f"locale: {exc}", "locale") from None


def _int_param(text: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(422, f"{name}: expected a whole number from {low} to {high}", name)
    return int(text)


_NAMED = re.compile(r"^(?:missing required field\(s\): )?([a-z_]+)\b")


def _field_of(reason: str) -> str:
    """`.url` for "url '…' is not an absolute http(s) URL", "missing … field(s): url", and
    "published: … is not ISO 8601"; nothing when the reason names no field."""
    from kabar.sources.jsonl import FIELDS

    found = _NAMED.match(reason)
    return f".{found.group(1)}" if found and found.group(1) in FIELDS else ""


# --- answers -------------------------------------------------------------------------------


def _public(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id, "list": subscriber.list_id, "email": subscriber.email,
        "name": subscriber.name, "locale": subscriber.locale, "status": subscriber.status,
        "origin": subscriber.origin,
        "created": _iso(subscriber.created), "updated": _iso(subscriber.updated),
    }  # fmt: skip


def _issue(issue: Any, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "key": issue.key, "digest": issue.digest_id, "list": issue.list_id,
        "period": issue.period, "issue_time": _iso(issue.issue_time), "state": issue.state,
        "detail": issue.detail, "counts": counts, "updated": _iso(issue.updated),
    }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None
