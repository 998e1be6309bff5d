"""What the subscriber's pages share: their words, the page frame with its one hashed
inline style and Content-Security-Policy, the client a request comes from, and the service
that opens the store, links and limits on first use (the app may start before the DB)."""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import unicodedata
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from kabar.config import Config, MailingList, web_origin
from kabar.consent import Client
from kabar.limits import DatabaseLimits, Limits, RedisLimits
from kabar.store import Store
from kabar.subscribers import Links, Subscriber, Subscribers, link_secret, verify
from kabar.urls import Urls
from kabar.web import forms

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
        # The validator's reason is English; the Indonesian page says what to check.
        "bad_address": "Alamat email tidak valid. Periksa lagi, misalnya nama@contoh.co.id.",
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

# The subscribe form and the preference centre ask for a few fields and a checkbox per
# list, digest and section; far more is no person filling them in.
MAX_FORM_FIELDS = 200
HONEYPOT = "website"  # a field the form hides from people; only bots fill it in
MAX_NAME = 60
STYLE = forms.STYLE
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# The pages need their one inline style and nothing else; their forms post to themselves.
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class Service:
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


def page(service: Service, language: str, title: str, body: str, status: int = 200) -> Response:
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


def say(text: str, **values: str) -> str:
    return html.escape(text.format(**values))


def button(label: str, field: tuple[str, str]) -> str:
    name, value = (html.escape(part) for part in field)
    return (
        f'<form method="post"><input type="hidden" name="{name}" value="{value}">'
        f'<button type="submit">{html.escape(label)}</button></form>'
    )


def notice(
    service: Service,
    language: str,
    title: str,
    sentence: str,
    values: dict[str, str] | None = None,
    *,
    status: int = 200,
) -> Response:
    """A page that says one sentence from TEXT."""
    text = TEXT[language]
    body = f"<p>{say(text[sentence], **(values or {}))}</p>"
    return page(service, language, text[title], body, status)


def invalid(service: Service) -> Response:
    language = service.config.site.language
    return page(service, language, TEXT[language]["invalid"], "", status=404)


def page_language(service: Service, request: Request) -> str:
    """?lang=, else the first supported language of Accept-Language, else the site's."""
    asked = request.query_params.get("lang", "")
    if asked in TEXT:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in TEXT:
            return code
    return service.language(None, None)


def form_allowed(service: Service, request: Request, token: str) -> bool:
    """The post comes from an allowed origin, or carries a token from kabar's own form
    served to this client (kabar's pages send no Referer, and so `Origin: null`)."""
    if service.origin_allowed(request):
        return True
    client = client_key(service.client_ip(request))
    return forms.token_valid(service.links.secret, client, token)


def client_of(service: Service, request: Request) -> Client:
    return Client(service.client_ip(request), request.headers.get("user-agent", ""))


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


async def read_form(request: Request) -> FormData:
    """The posted fields. No form of kabar's has a file field, so an upload is refused
    (400) at its first part's headers, before its bytes are spooled to disk."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
