"""Leaving and joining a list over HTTP.

- `POST /unsubscribe/{token}` with `List-Unsubscribe=One-Click` (RFC 8058) unsubscribes
  and answers 200, never a redirect. Mail clients send it from the List-Unsubscribe header.
- `GET /unsubscribe/{token}` only shows a page with a button (which sends that POST), so
  link scanners that fetch every URL in a message unsubscribe nobody.
- `POST /subscribe` (email, list, name, locale) adds a pending subscriber and mails a
  confirmation link (double opt-in); lists without double opt-in take new addresses at
  once, but an address that left (unsubscribed, bounced, complained) always gets a
  confirmation mail: only its owner can bring it back.
- `GET /subscribe/confirm/{token}` shows a button; its POST activates the subscriber.

Tokens are HMAC-signed per subscriber and purpose (kabar.subscribers.sign): a forged or
altered one gets a 404 and changes nothing. The answer to `POST /subscribe` is the same
whatever the address's state, so the form cannot be used to probe for subscribers.

The form cannot be used to mail-bomb anyone: it only takes posts from kabar's own origin
and `web.allowed_origins` (Origin, else Referer), has a honeypot field (`website`, which a
person leaves empty: a filled one is answered like success and mails nobody), and has
sliding-window limits (web.subscribe_limits) per client IP on requests and per address on
confirmation mails, shared by every process (kabar.limits). The confirmation goes out after
the answer, and is recorded (kabar.mails) with the transport's reply; what the visitor typed
reaches no header but the validated address, and the name is kept only if it is letters
and spaces (at most 60).
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from kabar.config import Config, MailingList, web_origin
from kabar.deliver.send import utcnow
from kabar.deliver.transport import Envelope
from kabar.limits import DatabaseLimits, Limits, RedisLimits
from kabar.mails import Mails
from kabar.store import Store
from kabar.subscribers import (
    LEFT,
    InvalidAddress,
    Links,
    Subscriber,
    Subscribers,
    link_secret,
    normalise_address,
    verify,
)
from kabar.urls import CONFIRM_ROUTE, SUBSCRIBE_ROUTE, UNSUBSCRIBE_ROUTE, Urls

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
        "forbidden": "Formulir ini hanya dapat dikirim dari halaman situs ini.",
        "too_many": "Terlalu banyak permintaan. Silakan coba lagi nanti.",
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
        "forbidden": "This form can only be sent from this site's pages.",
        "too_many": "Too many requests. Please try again later.",
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
MAX_FORM_FIELDS = 20  # the subscribe form has five; more is no person filling it in
HONEYPOT = "website"  # a field the form hides from people; only bots fill it in
MAX_NAME = 60
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
    "padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# The pages need their one inline style and nothing else; their forms post to themselves.
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class _Service:
    """What the handlers share, opened on first use (the app may start before the DB)."""

    def __init__(self, config: Config, store: Store | None) -> None:
        self.config = config
        self._store = store
        self._given_store = store is not None
        self._links: Links | None = None
        self._limits: Limits | None = None
        self.origins = {web_origin(Urls(config).web_base), *config.web.allowed_origins}
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in config.web.trusted_proxies]

    def close(self) -> None:
        """Close the store if it was opened here, and the Redis connection."""
        if self._store is not None and not self._given_store:
            self._store.close()
            self._store = None
        if isinstance(self._limits, RedisLimits):
            self._limits.close()
        self._limits = None

    @property
    def limits(self) -> Limits:
        """In Redis when Dramatiq workers share one, else in the database."""
        if self._limits is None:
            engine = self.config.engine
            if engine.mode == "dramatiq" and engine.limiter:
                self._limits = RedisLimits(engine.limiter, f"kabar:{engine.queue}:limit:")
            else:
                self._limits = DatabaseLimits(self.store.engine)
        return self._limits

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

    def origin_allowed(self, request: Request) -> bool:
        """The post comes from one of our pages: its Origin (or, without one, its
        Referer) is web.base_url's or in web.allowed_origins."""
        sent = request.headers.get("origin") or request.headers.get("referer") or ""
        try:
            return web_origin(sent) in self.origins
        except ValueError:  # none, "null", or not http(s)
            return False

    def client_ip(self, request: Request) -> str:
        """The socket peer; behind web.trusted_proxies, the nearest X-Forwarded-For hop
        that is not one of them (the proxy appends the client's address on the right)."""
        current = request.client.host if request.client else ""
        hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",")]
        hops = [hop for hop in hops if hop]
        while hops and self._trusted(current):
            current = hops.pop()
        return current

    def _trusted(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.proxies)

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
        f"<style>{STYLE}</style>"
        f"</head><body><p>{site}</p><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP}
    return HTMLResponse(document, status_code=status, headers=headers)


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
        form = await _read_form(request)
        if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            return _page(service, language, text["unsubscribe_title"], "", status=400)
        if service.subscribers.set_status(
            subscriber.id, "unsubscribed", expected=["active", "pending"]
        ):
            log.info("list %s: %s unsubscribed", subscriber.list_id, subscriber.id)
        return _notice(service, language, "unsubscribe_title", "unsubscribed", names)

    return handle


# --- subscribe (double opt-in) --------------------------------------------------------------


async def _read_form(request: Request) -> FormData:
    """The posted fields. No form of kabar's has a file field, so an upload is refused
    (400) at its first part's headers, before its bytes are spooled to disk."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def _subscribe(service: _Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        form = await _read_form(request)
        lists = service.config.lists
        list_id = str(form.get("list") or (lists[0].id if len(lists) == 1 else ""))
        mailing_list = service.mailing_list(list_id)
        locale = str(form.get("locale") or "")
        language = locale if locale in TEXT else service.language(mailing_list, None)
        if not service.origin_allowed(request):
            return _notice(service, language, "subscribe_title", "forbidden", status=403)
        limits = service.config.web.subscribe_limits
        client = client_key(service.client_ip(request))
        if not service.limits.allow(f"ip:{client}", limits.per_ip, limits.ip_window):
            log.debug("POST /subscribe: %s is over its limit", client)
            page = _notice(service, language, "subscribe_title", "too_many", status=429)
            page.headers["Retry-After"] = str(int(limits.ip_window.total_seconds()))
            return page
        if mailing_list is None:
            return _notice(service, language, "subscribe_title", "unknown_list", status=400)
        try:
            email = normalise_address(str(form.get("email") or ""))
        except InvalidAddress as exc:
            values = {"reason": str(exc)}
            return _notice(service, language, "subscribe_title", "bad_address", values, status=400)
        answer = _notice(service, language, "subscribe_title", "check_inbox", {"email": email})
        if form.get(HONEYPOT):
            log.info("POST /subscribe from %s: honeypot filled in, nothing sent", client)
            return answer  # the same answer, so the bot learns nothing
        subscriber = _join(service, mailing_list, email, str(form.get("name") or ""), locale)
        if subscriber.status not in ("pending", *LEFT):
            return answer  # already active (or active at once): nothing to confirm
        if not service.limits.allow(
            "address:" + hashlib.sha256(email.lower().encode()).hexdigest()[:40],
            limits.per_address,
            limits.address_window,
        ):
            log.warning("list %s: confirmation to %s held back (limit)", list_id, subscriber.id)
            return answer
        if subscriber.status in LEFT:  # back to pending: only the confirmation activates it
            service.subscribers.set_status(subscriber.id, "pending", expected=[subscriber.status])
        answer.background = BackgroundTask(
            _send_confirmation, service, *_queue_confirmation(service, mailing_list, subscriber,
                                                              language)
        )  # fmt: skip
        return answer

    return handle


def _join(
    service: _Service, mailing_list: MailingList, email: str, name: str, locale: str
) -> Subscriber:
    """The subscriber the form asks for: new (pending, or active at once without double
    opt-in), or the stored one unchanged (one who left is the caller's to handle)."""
    return service.subscribers.add(
        mailing_list.id,
        email,
        name=clean_name(name),
        locale=locale if locale in TEXT else "",
        status="pending" if mailing_list.double_opt_in else "active",
        origin="web",
    )[0]


def clean_name(text: str) -> str:
    """The name if it is only letters and spaces and at most MAX_NAME long, else ''.
    Greetings show it, so it must not carry a link or a message of the sender's."""
    name = " ".join(text.split())
    if len(name) > MAX_NAME:
        return ""
    if all(c == " " or unicodedata.category(c)[0] in "LM" for c in name):
        return name
    return ""


def client_key(address: str) -> str:
    """What the per-IP limit counts: the address, or its /64 for IPv6 (one host's share)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def confirmation_message(
    service: _Service, mailing_list: MailingList, subscriber: Subscriber, language: str
) -> tuple[str, bytes]:
    """The Message-ID and bytes of a confirmation mail; nothing in its headers comes from
    the form but the validated address."""
    text = TEXT[language]
    list_name = mailing_list.name or mailing_list.id
    domain = parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage(policy=SMTP)
    message["From"] = mailing_list.from_
    message["To"] = Address(addr_spec=subscriber.email)
    message["Subject"] = text["mail_subject"].format(list=list_name)
    message["Date"] = format_datetime(utcnow())
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    url = service.links.confirm_url(subscriber.id)
    message.set_content(text["mail_body"].format(email=subscriber.email, list=list_name, url=url))
    return message_id, message.as_bytes()


def _queue_confirmation(
    service: _Service, mailing_list: MailingList, subscriber: Subscriber, language: str
) -> tuple[int, Envelope, bytes]:
    message_id, message = confirmation_message(service, mailing_list, subscriber, language)
    mail_id = Mails(service.store.engine).queue(
        "confirm", list_id=mailing_list.id, subscriber_id=subscriber.id,
        email=subscriber.email, message_id=message_id,
    )  # fmt: skip
    envelope = Envelope(parseaddr(mailing_list.from_)[1], subscriber.email, message_id)
    return mail_id, envelope, message


async def _send_confirmation(
    service: _Service, mail_id: int, envelope: Envelope, message: bytes
) -> None:
    """Send after the answer (so its timing says nothing) and record what happened."""
    from kabar.deliver import open_transport

    mails = Mails(service.store.engine)
    try:
        transport = open_transport(service.config)
        try:
            reply = await transport.send_one(envelope, message)
        finally:
            await transport.close()
    except Exception as exc:  # whatever it was, it is recorded, not lost
        log.warning("confirmation mail %d not sent: %s", mail_id, exc)
        mails.finish(mail_id, sent=False, code=None, error=f"{type(exc).__name__}: {exc}")
        return
    sent = reply.kind == "sent"
    mails.finish(mail_id, sent=sent, code=reply.code, reply=str(reply),
                 error="" if sent else reply.kind)  # fmt: skip
    if not sent:
        log.warning("confirmation mail %d not sent: %s", mail_id, reply)


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


def routes(
    config: Config, store: Store | None = None, *, closers: list[Callable[[], None]] | None = None
) -> list[BaseRoute]:
    """The subscribe and unsubscribe routes, for the app `kabar serve` runs; what they
    open themselves is closed by the function added to `closers`."""
    service = _Service(config, store)
    if closers is not None:
        closers.append(service.close)
    return [
        Route(UNSUBSCRIBE_ROUTE, _unsubscribe(service), methods=["GET", "POST"]),
        Route(SUBSCRIBE_ROUTE, _subscribe(service), methods=["POST"]),
        Route(CONFIRM_ROUTE, _confirm(service), methods=["GET", "POST"]),
    ]
