"""Webhooks in `kabar serve` for relays that report bounces and complaints by HTTP:

    POST /webhooks/ses        Amazon SES through SNS   (bounces.webhooks.ses: true)
    POST /webhooks/mailgun    Mailgun                  (bounces.webhooks.mailgun_key_env)
    POST /webhooks/postmark   Postmark                 (bounces.webhooks.postmark_password_env)
    POST /webhooks/bounce     any relay, HMAC-signed   (bounces.webhooks.generic_secret_env)

Only the configured ones exist. A report whose signature or password does not check gets
a 401 or 403 and changes nothing; a malformed one a 400; a body over 1 MB a 413. A good
one is recorded like a returned message (kabar.inbound.process) and answered 200 with
the counts, so the relay stops retrying; reading it again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.config import Config, read_secret
from kabar.inbound import webhooks
from kabar.inbound.parse import Reading
from kabar.inbound.process import Processor
from kabar.inbound.webhooks import BadReport, SnsPolicy
from kabar.store import Store

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000
Certificates = Callable[[str], bytes]


def _fetch(url: str) -> bytes:
    import httpx

    response = httpx.get(url, timeout=10, follow_redirects=False)
    response.raise_for_status()
    return response.content


class _Service:
    def __init__(
        self, config: Config, store: Store | None, sns: SnsPolicy, fetch: Certificates
    ) -> None:
        self.config = config
        self._store = store
        self._own_store = store is None
        self.sns = sns
        self.fetch = fetch
        self._certificates: dict[str, bytes] = {}

    @cached_property
    def store(self) -> Store:
        return self._store or Store.open(self.config.database_url)

    @cached_property
    def processor(self) -> Processor:
        from kabar.subscribers import link_secret

        engine = self.store.engine
        return Processor(self.config, engine, link_secret(self.config, engine))

    def certificate(self, url: str) -> bytes:
        if url not in self._certificates:
            if len(self._certificates) > 32:
                self._certificates.clear()
            self._certificates[url] = self.fetch(url)
        return self._certificates[url]

    async def record(self, readings: list[Reading], source: str) -> Response:
        processed = await asyncio.to_thread(
            self.processor.readings, readings, source, by_address=True
        )
        kinds: dict[str, int] = {}
        for item in processed:
            for result in item.results:
                kinds[result.kind] = kinds.get(result.kind, 0) + 1
        return JSONResponse({"recorded": kinds})

    def close(self) -> None:
        if not self._own_store or "store" not in self.__dict__:
            return
        self.store.close()


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    body = await request.body()
    if len(body) > MAX_BODY:
        raise _TooLarge
    return body


class _TooLarge(Exception):
    pass


Handler = Callable[[_Service, Request, bytes], Awaitable[Response]]


def _endpoint(service: _Service, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            body = await _body(request)
            return await handler(service, request, body)
        except _TooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        except _Forbidden as exc:
            log.warning("%s: refused: %s", request.url.path, exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except BadReport as exc:
            log.warning("%s: bad report: %s", request.url.path, exc)
            return JSONResponse({"error": str(exc)}, status_code=400)

    return handle


class _Forbidden(Exception):
    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


async def _ses(service: _Service, request: Request, body: bytes) -> Response:
    message = webhooks.parse_json(body)
    if not isinstance(message, dict):
        raise BadReport("an SNS message is a JSON object")
    try:
        await asyncio.to_thread(webhooks.verify_sns, message, service.certificate, service.sns)
    except BadReport as exc:
        raise _Forbidden(str(exc)) from None
    except OSError as exc:  # the certificate could not be fetched: SNS will retry
        log.error("SNS certificate: %s", exc)
        return JSONResponse({"error": "certificate unavailable"}, status_code=503)
    topics = service.config.bounces.webhooks.ses_topics
    if topics and message.get("TopicArn") not in topics:
        raise _Forbidden("a topic kabar was not told to accept")
    if message["Type"] == "SubscriptionConfirmation":
        return await _confirm_subscription(service, message)
    if message["Type"] != "Notification":
        return JSONResponse({"recorded": {}})
    notification = webhooks.parse_json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict):
        raise BadReport("the SES notification is not a JSON object")
    readings = webhooks.ses_readings(notification, service.processor.addresses)
    return await service.record(readings, "ses")


async def _confirm_subscription(service: _Service, message: dict[str, Any]) -> Response:
    url = str(message.get("SubscribeURL", ""))
    if not service.sns.confirm_url.fullmatch(url):
        raise _Forbidden("SubscribeURL is not an SNS host")
    try:
        await asyncio.to_thread(service.fetch, url)
    except OSError as exc:
        log.error("SNS subscription confirmation: %s", exc)
        return JSONResponse({"error": "confirmation failed"}, status_code=503)
    log.info("SNS subscription to %s confirmed", message.get("TopicArn"))
    return JSONResponse({"confirmed": message.get("TopicArn")})


async def _mailgun(service: _Service, request: Request, body: bytes) -> Response:
    env = service.config.bounces.webhooks.mailgun_key_env
    assert env
    payload = webhooks.parse_json(body)
    if not isinstance(payload, dict):
        raise BadReport("a Mailgun event is a JSON object")
    try:
        webhooks.verify_mailgun(payload, read_secret(env, "Mailgun's webhooks").encode())
    except BadReport as exc:
        raise _Forbidden(str(exc)) from None
    readings = webhooks.mailgun_readings(payload, service.processor.addresses)
    return await service.record(readings, "mailgun")


async def _postmark(service: _Service, request: Request, body: bytes) -> Response:
    settings = service.config.bounces.webhooks
    assert settings.postmark_password_env
    password = read_secret(settings.postmark_password_env, "Postmark's webhooks")
    try:
        webhooks.verify_basic(
            request.headers.get("authorization", ""), settings.postmark_username, password
        )
    except BadReport as exc:
        raise _Forbidden(str(exc), 401) from None
    payload = webhooks.parse_json(body)
    if not isinstance(payload, dict):
        raise BadReport("a Postmark record is a JSON object")
    return await service.record(webhooks.postmark_readings(payload), "postmark")


async def _generic(service: _Service, request: Request, body: bytes) -> Response:
    env = service.config.bounces.webhooks.generic_secret_env
    assert env
    secret = read_secret(env, "the bounce webhook").encode()
    try:
        webhooks.verify_body(body, request.headers.get("x-kabar-signature", ""), secret)
    except BadReport as exc:
        raise _Forbidden(str(exc)) from None
    payload = webhooks.parse_json(body)
    readings = list(webhooks.generic_readings(payload, service.processor.addresses))
    return await service.record(readings, "webhook")


def routes(
    config: Config,
    store: Store | None = None,
    *,
    closers: list[Callable[[], None]] | None = None,
    sns: SnsPolicy | None = None,
    fetch: Certificates = _fetch,
) -> list[BaseRoute]:
    """The configured relays' webhook routes. `sns` and `fetch` are for the tests, which
    sign with a local certificate served from 127.0.0.1: `kabar serve` never passes them."""
    service = _Service(config, store, sns or SnsPolicy(), fetch)
    if closers is not None:
        closers.append(service.close)
    settings = config.bounces.webhooks
    wanted: list[tuple[str, Handler, bool]] = [
        ("/webhooks/ses", _ses, settings.ses),
        ("/webhooks/mailgun", _mailgun, settings.mailgun_key_env is not None),
        ("/webhooks/postmark", _postmark, settings.postmark_password_env is not None),
        ("/webhooks/bounce", _generic, settings.generic_secret_env is not None),
    ]
    return [
        Route(path, _endpoint(service, handler), methods=["POST"])
        for path, handler, on in wanted
        if on
    ]
