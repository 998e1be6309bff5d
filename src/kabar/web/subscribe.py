"""Leaving and joining a list over HTTP.

- `POST /unsubscribe/{token}` with `List-Unsubscribe=One-Click` (RFC 8058) unsubscribes
  and answers 200, never a redirect. Mail clients send it from the List-Unsubscribe header.
- `GET /unsubscribe/{token}` only shows a page with a button (which sends that POST), so
  link scanners that fetch every URL in a message unsubscribe nobody.
- `POST /subscribe` (email, list, name, locale) adds a pending subscriber and mails a
  confirmation link (double opt-in); lists without double opt-in take them at once.
- `GET /subscribe/confirm/{token}` shows a button; its POST activates the subscriber.

Tokens are HMAC-signed per subscriber and purpose (kabar.subscribers.sign): a forged or
altered one gets a 404 and changes nothing. Pages do not say whether an address is on a
list, so the form cannot be used to probe for subscribers.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.config import Config, MailingList
from kabar.deliver.send import utcnow
from kabar.deliver.transport import Envelope
from kabar.store import Store
from kabar.subscribers import InvalidAddress, Links, Subscriber, Subscribers, link_secret, verify

log = logging.getLogger(__name__)

TEXT = {
    "id": {
        "invalid": "Tautan ini tidak berlaku.",
        "unsubscribe_title": "Berhenti berlangganan",
        "unsubscribe_ask": "Berhenti menerima {list} di {email}?",
        "unsubscribe_button": "Ya, berhenti berlangganan",
        "unsubscribed": "{email} tidak akan lagi menerima {list}.",
        "not_subscribed": "{email} tidak berlangganan {list}.",
        "subscribe_title": "Berlangganan",
        "check_inbox": (
            "Jika {email} belum terdaftar, kami mengirim tautan konfirmasi ke alamat itu."
        ),
        "bad_address": "Alamat email tidak valid: {reason}",
        "unknown_list": "Daftar tidak dikenal.",
        "send_failed": "Email konfirmasi belum terkirim. Silakan coba lagi nanti.",
        "confirm_title": "Konfirmasi langganan",
        "confirm_ask": "Konfirmasi langganan {list} untuk {email}?",
        "confirm_button": "Ya, saya mau berlangganan",
        "confirmed": "Terima kasih! {email} sekarang berlangganan {list}.",
        "mail_subject": "Konfirmasi langganan {list}",
        "mail_body": (
            "Halo,\n\nSeseorang (semoga Anda) meminta agar {email} berlangganan {list}.\n"
            "Buka tautan ini untuk mengonfirmasi:\n\n{url}\n\n"
            "Jika bukan Anda, abaikan email ini: tanpa konfirmasi, Anda tidak akan "
            "menerima apa pun.\n"
        ),
    },
    "en": {
        "invalid": "This link is not valid.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_ask": "Stop sending {list} to {email}?",
        "unsubscribe_button": "Yes, unsubscribe",
        "unsubscribed": "{email} will no longer receive {list}.",
        "not_subscribed": "{email} is not subscribed to {list}.",
        "subscribe_title": "Subscribe",
        "check_inbox": "If {email} is not on the list yet, we sent it a confirmation link.",
        "bad_address": "That email address is not valid: {reason}",
        "unknown_list": "Unknown list.",
        "send_failed": "The confirmation email could not be sent. Please try again later.",
        "confirm_title": "Confirm your subscription",
        "confirm_ask": "Subscribe {email} to {list}?",
        "confirm_button": "Yes, subscribe me",
        "confirmed": "Thank you! {email} is now subscribed to {list}.",
        "mail_subject": "Confirm your subscription to {list}",
        "mail_body": (
            "Hello,\n\nSomeone (hopefully you) asked to subscribe {email} to {list}.\n"
            "Open this link to confirm:\n\n{url}\n\n"
            "If it was not you, ignore this email: without confirmation you will "
            "receive nothing.\n"
        ),
    },
}

ONE_CLICK = ("List-Unsubscribe", "One-Click")


class _Service:
    """What the handlers share, opened on first use (the app may start before the DB)."""

    def __init__(self, config: Config, store: Store | None) -> None:
        self.config = config
        self._store = store
        self._links: Links | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.config.database_url)
        return self._store

    @property
    def subscribers(self) -> Subscribers:
        return Subscribers(self.store.engine)

    @property
    def links(self) -> Links:
        if self._links is None:
            self._links = Links(self.config, link_secret(self.config, self.store.engine))
        return self._links

    def language(self, mailing_list: MailingList | None, subscriber: Subscriber | None) -> str:
        for candidate in (
            subscriber.locale if subscriber else "",
            mailing_list.locale if mailing_list else "",
        ):
            if candidate in TEXT:
                return candidate
        return self.config.site.language

    def mailing_list(self, list_id: str) -> MailingList | None:
        return next((m for m in self.config.lists if m.id == list_id), None)

    def wording(self, subscriber: Subscriber) -> tuple[str, dict[str, str], dict[str, str]]:
        """The page language, its texts, and the names a subscriber's pages fill in."""
        mailing_list = self.mailing_list(subscriber.list_id)
        language = self.language(mailing_list, subscriber)
        names = {
            "email": subscriber.email,
            "list": (mailing_list.name if mailing_list else "") or subscriber.list_id,
        }
        return language, TEXT[language], names

    def from_token(self, token: str, purpose: Any) -> Subscriber | None:
        subscriber_id = verify(self.links.secret, purpose, token)
        return self.subscribers.get(subscriber_id) if subscriber_id else None


def _page(service: _Service, language: str, title: str, body: str, status: int = 200) -> Response:
    site = html.escape(service.config.site.title)
    document = (
        f'<!doctype html>\n<html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · {site}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style>"
        f"</head><body><p>{site}</p><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return HTMLResponse(document, status_code=status, headers={"Cache-Control": "no-store"})


def _say(text: str, **values: str) -> str:
    return html.escape(text.format(**values))


def _button(label: str, field: tuple[str, str]) -> str:
    name, value = (html.escape(part) for part in field)
    return (
        f'<form method="post"><input type="hidden" name="{name}" value="{value}">'
        f'<button type="submit">{html.escape(label)}</button></form>'
    )


def _notice(
    service: _Service,
    language: str,
    title: str,
    sentence: str,
    values: dict[str, str] | None = None,
    *,
    status: int = 200,
) -> Response:
    """A page that says one sentence from TEXT."""
    text = TEXT[language]
    body = f"<p>{_say(text[sentence], **(values or {}))}</p>"
    return _page(service, language, text[title], body, status)


def _invalid(service: _Service) -> Response:
    language = service.config.site.language
    return _page(service, language, TEXT[language]["invalid"], "", status=404)


# --- unsubscribe -------------------------------------------------------------------------


def _unsubscribe(service: _Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "unsubscribe")
        if subscriber is None:
            return _invalid(service)
        language, text, names = service.wording(subscriber)
        if request.method == "GET":
            if subscriber.status not in ("active", "pending"):
                return _notice(service, language, "unsubscribe_title", "not_subscribed", names)
            body = f"<p>{_say(text['unsubscribe_ask'], **names)}</p>"
            body += _button(text["unsubscribe_button"], ONE_CLICK)
            return _page(service, language, text["unsubscribe_title"], body)
        form = await request.form()
        if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            return _page(service, language, text["unsubscribe_title"], "", status=400)
        if service.subscribers.set_status(
            subscriber.id, "unsubscribed", expected=["active", "pending"]
        ):
            log.info("list %s: %s unsubscribed", subscriber.list_id, subscriber.id)
        return _notice(service, language, "unsubscribe_title", "unsubscribed", names)

    return handle


# --- subscribe (double opt-in) --------------------------------------------------------------


def _subscribe(service: _Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        form = await request.form()
        lists = service.config.lists
        list_id = str(form.get("list") or (lists[0].id if len(lists) == 1 else ""))
        mailing_list = service.mailing_list(list_id)
        language = service.language(mailing_list, None)
        locale = str(form.get("locale") or "")
        if locale in TEXT:
            language = locale
        if mailing_list is None:
            return _notice(service, language, "subscribe_title", "unknown_list", status=400)
        name = " ".join(str(form.get("name") or "").split())[:200]
        email = str(form.get("email") or "")
        try:
            subscriber, made = service.subscribers.add(
                list_id,
                email,
                name=name,
                locale=locale if locale in TEXT else "",
                status="pending" if mailing_list.double_opt_in else "active",
                origin="web",
            )
        except InvalidAddress as exc:
            return _notice(
                service,
                language,
                "subscribe_title",
                "bad_address",
                {"reason": str(exc)},
                status=400,
            )
        if not made and subscriber.status == "unsubscribed" and mailing_list.double_opt_in:
            service.subscribers.set_status(subscriber.id, "pending", expected=["unsubscribed"])
            subscriber = service.subscribers.get(subscriber.id) or subscriber
        elif not made and subscriber.status == "unsubscribed":
            service.subscribers.set_status(subscriber.id, "active", expected=["unsubscribed"])
        confirming = subscriber.status == "pending" and mailing_list.double_opt_in
        if confirming and not await _send_confirmation(service, mailing_list, subscriber, language):
            return _notice(service, language, "subscribe_title", "send_failed", status=503)
        # The same answer whether or not the address was already there.
        return _notice(
            service, language, "subscribe_title", "check_inbox", {"email": subscriber.email}
        )

    return handle


def confirmation_message(
    service: _Service, mailing_list: MailingList, subscriber: Subscriber, language: str
) -> bytes:
    text = TEXT[language]
    list_name = mailing_list.name or mailing_list.id
    domain = parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage(policy=SMTP)
    message["From"] = mailing_list.from_
    message["To"] = Address(subscriber.name, addr_spec=subscriber.email)
    message["Subject"] = text["mail_subject"].format(list=list_name)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    url = service.links.confirm_url(subscriber.id)
    message.set_content(text["mail_body"].format(email=subscriber.email, list=list_name, url=url))
    return message.as_bytes()


async def _send_confirmation(
    service: _Service, mailing_list: MailingList, subscriber: Subscriber, language: str
) -> bool:
    from kabar.deliver.issue import open_transport

    message = confirmation_message(service, mailing_list, subscriber, language)
    envelope = Envelope(parseaddr(mailing_list.from_)[1], subscriber.email, "")
    transport = open_transport(service.config)
    try:
        reply = await transport.send_one(envelope, message)
    finally:
        await transport.close()
    if reply.kind != "sent":
        log.warning(
            "list %s: confirmation to %s not sent: %s", mailing_list.id, subscriber.id, reply
        )
    return reply.kind == "sent"


def _confirm(service: _Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "confirm")
        if subscriber is None:
            return _invalid(service)
        language, text, names = service.wording(subscriber)
        if request.method == "GET" and subscriber.status == "pending":
            body = f"<p>{_say(text['confirm_ask'], **names)}</p>"
            body += _button(text["confirm_button"], ("confirm", "yes"))
            return _page(service, language, text["confirm_title"], body)
        if request.method == "POST" and service.subscribers.set_status(
            subscriber.id, "active", expected=["pending"]
        ):
            log.info("list %s: %s confirmed", subscriber.list_id, subscriber.id)
            subscriber = service.subscribers.get(subscriber.id) or subscriber
        if subscriber.status != "active":  # left or bounced since: the link is spent
            return _invalid(service)
        return _notice(service, language, "confirm_title", "confirmed", names)

    return handle


def routes(config: Config, store: Store | None = None) -> list[BaseRoute]:
    """The subscribe and unsubscribe routes, for the app `kabar serve` runs."""
    service = _Service(config, store)
    return [
        Route("/unsubscribe/{token}", _unsubscribe(service), methods=["GET", "POST"]),
        Route("/subscribe", _subscribe(service), methods=["POST"]),
        Route("/subscribe/confirm/{token}", _confirm(service), methods=["GET", "POST"]),
    ]
