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

import hashlib
import html
import logging
from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kabar.addresses import InvalidAddress, normalise_address
from kabar.config import Config, MailingList
from kabar.consent import Client, Consent, consent_record
from kabar.deliver.send import utcnow
from kabar.deliver.transport import Envelope
from kabar.mails import Kind, Mails
from kabar.store import Store
from kabar.subscribers import (
    LEFT,
    Subscriber,
)
from kabar.suppression import Suppressions
from kabar.urls import CONFIRM_ROUTE, SUBSCRIBE_ROUTE, UNSUBSCRIBE_ROUTE
from kabar.web import forms, preferences
from kabar.web.pages import (
    HONEYPOT,
    TEXT,
    Service,
    button,
    clean_name,
    client_key,
    client_of,
    form_allowed,
    invalid,
    notice,
    page,
    page_language,
    read_form,
    say,
)

log = logging.getLogger(__name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")
# --- unsubscribe -------------------------------------------------------------------------


def _unsubscribe(service: Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "unsubscribe")
        if subscriber is None:
            return invalid(service)
        language, text, names = service.wording(subscriber)
        if request.method == "GET":
            if subscriber.status not in ("active", "pending"):
                return notice(service, language, "unsubscribe_title", "not_subscribed", names)
            body = f"<p>{say(text['unsubscribe_ask'], **names)}</p>"
            body += button(text["unsubscribe_button"], ONE_CLICK)
            return page(service, language, text["unsubscribe_title"], body)
        form = await read_form(request)
        if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            return page(service, language, text["unsubscribe_title"], "", status=400)
        if service.subscribers.set_status(
            subscriber.id, "unsubscribed", expected=["active", "pending"]
        ):
            log.info("list %s: %s unsubscribed", subscriber.list_id, subscriber.id)
            Consent(service.store.engine).record(
                subscriber.id, "changed", {"status": [subscriber.status, "unsubscribed"]},
                client_of(service, request),
            )  # fmt: skip
        return notice(service, language, "unsubscribe_title", "unsubscribed", names)

    return handle


# --- subscribe (double opt-in) --------------------------------------------------------------


def _subscribe_page(service: Service) -> Callable[[Request], Awaitable[Response]]:
    """GET /subscribe: the form, in ?lang= or the browser's language, with a switch."""

    async def handle(request: Request) -> Response:
        language = page_language(service, request)
        text = forms.TEXT[language]
        other = "en" if language == "id" else "id"
        token = forms.form_token(service.links.secret, client_key(service.client_ip(request)))
        offered = forms.offer(service.config, service.store.engine)
        body = (
            f'<nav><a href="?lang={other}" hreflang="{other}" lang="{other}">'
            f"{html.escape(text['switch'])}</a></nav>"
            f"<p>{html.escape(text['intro'])}</p>"
            + forms.subscribe_form(text, offered, language=language, action="/subscribe",
                                   token=token)
        )  # fmt: skip
        return page(service, language, TEXT[language]["subscribe_title"], body)

    return handle


def _subscribe(service: Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        form = await read_form(request)
        lists = service.config.lists
        list_id = str(form.get("list") or (lists[0].id if len(lists) == 1 else ""))
        mailing_list = service.mailing_list(list_id)
        locale = str(form.get("locale") or "")
        language = locale if locale in TEXT else service.language(mailing_list, None)
        if not form_allowed(service, request, str(form.get(forms.TOKEN_FIELD) or "")):
            return notice(service, language, "subscribe_title", "forbidden", status=403)
        limits = service.config.web.subscribe_limits
        client = client_key(service.client_ip(request))
        if not service.limits.allow(f"ip:{client}", limits.per_ip, limits.ip_window):
            log.debug("POST /subscribe: %s is over its limit", client)
            answer = notice(service, language, "subscribe_title", "too_many", status=429)
            answer.headers["Retry-After"] = str(int(limits.ip_window.total_seconds()))
            return answer
        offered = forms.offer(service.config, service.store.engine)
        choice = forms.read_choice(form, offered, default_lists=[list_id])
        if mailing_list is None and not choice.lists:
            return notice(service, language, "subscribe_title", "unknown_list", status=400)
        try:
            email = normalise_address(str(form.get("email") or ""))
        except InvalidAddress as exc:
            values = {"reason": str(exc)}
            return notice(service, language, "subscribe_title", "bad_address", values, status=400)
        answer = notice(service, language, "subscribe_title", "check_inbox", {"email": email})
        if form.get(HONEYPOT):
            log.info("POST /subscribe from %s: honeypot filled in, nothing sent", client)
            return answer  # the same answer, so the bot learns nothing
        if Suppressions(service.store.engine).is_suppressed(email):
            log.info("POST /subscribe: a suppressed address, nothing sent")
            return answer  # the same answer: the form tells nobody who is suppressed
        consent = consent_record(
            "form", now=utcnow(), client=client_of(service, request), language=language
        )
        waiting = []
        for chosen_id, digests in choice.lists.items():
            chosen_list = service.mailing_list(chosen_id)
            assert chosen_list is not None  # read_choice keeps only configured lists
            subscriber = _join(
                service, chosen_list, email, str(form.get("name") or ""), locale,
                digests=digests, sections=choice.sections, consent=consent,
            )  # fmt: skip
            if subscriber.status in ("pending", *LEFT):
                waiting.append((chosen_list, subscriber))
        if not waiting:
            return answer  # already active (or active at once): nothing to confirm
        if not service.limits.allow(
            "address:" + hashlib.sha256(email.lower().encode()).hexdigest()[:40],
            limits.per_address,
            limits.address_window,
        ):
            log.warning("confirmation to %s held back (limit)", waiting[0][1].id)
            return answer
        queued = []
        for chosen_list, subscriber in waiting:
            if subscriber.status in LEFT:  # back to pending: only the confirmation activates it
                service.subscribers.set_status(
                    subscriber.id, "pending", expected=[subscriber.status]
                )
            queued.append(_queue_confirmation(service, chosen_list, subscriber, language))
        answer.background = BackgroundTask(_send_all, service, queued)
        return answer

    return handle


async def _send_all(service: Service, queued: list[tuple[int, Envelope, bytes]]) -> None:
    for mail_id, envelope, message in queued:
        await _send_confirmation(service, mail_id, envelope, message)


def _join(
    service: Service,
    mailing_list: MailingList,
    email: str,
    name: str,
    locale: str,
    *,
    digests: tuple[str, ...] = (),
    sections: tuple[str, ...] = (),
    consent: dict[str, Any] | None = None,
) -> Subscriber:
    """The subscriber the form asks for: new (pending, or active at once without double
    opt-in), or the stored one unchanged (one who left is the caller's to handle; their
    choices in this form apply once they confirm)."""
    subscriber, made = service.subscribers.add(
        mailing_list.id,
        email,
        name=clean_name(name),
        locale=locale if locale in TEXT else "",
        status="pending" if mailing_list.double_opt_in else "active",
        origin="web",
        digests=digests,
        sections=sections,
        consent=consent,
    )
    client = Client((consent or {}).get("ip", ""), (consent or {}).get("user_agent", ""))
    if made:
        Consent(service.store.engine).record(
            subscriber.id, "subscribed", {"origin": "form"}, client
        )
    elif subscriber.status in LEFT:  # coming back: the new form's choices and consent
        Consent(service.store.engine).change(
            subscriber, client, digests=digests, sections=sections,
            locale=locale if locale in TEXT else None,
        )  # fmt: skip
        _set_consent(service, subscriber.id, consent)
    return subscriber


def _set_consent(service: Service, subscriber_id: str, consent: dict[str, Any] | None) -> None:
    from sqlalchemy import update

    from kabar.store.tables import subscribers

    with service.store.engine.begin() as connection:
        connection.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(consent=consent)
        )


def confirmation_message(
    service: Service, mailing_list: MailingList, subscriber: Subscriber, language: str
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
    service: Service, mailing_list: MailingList, subscriber: Subscriber, language: str
) -> tuple[int, Envelope, bytes]:
    message_id, message = confirmation_message(service, mailing_list, subscriber, language)
    return _queue_mail(service, "confirm", mailing_list, subscriber, message_id, message)


def _queue_mail(
    service: Service,
    kind: Kind,
    mailing_list: MailingList,
    subscriber: Subscriber,
    message_id: str,
    message: bytes,
) -> tuple[int, Envelope, bytes]:
    """Record a transactional mail (kabar.mails) before it goes out, and its envelope."""
    mail_id = Mails(service.store.engine).queue(
        kind, list_id=mailing_list.id, subscriber_id=subscriber.id,
        email=subscriber.email, message_id=message_id,
    )  # fmt: skip
    envelope = Envelope(parseaddr(mailing_list.from_)[1], subscriber.email, message_id)
    return mail_id, envelope, message


async def _send_confirmation(
    service: Service, mail_id: int, envelope: Envelope, message: bytes
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


def _confirm(service: Service) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "confirm")
        if subscriber is None:
            return invalid(service)
        language, text, names = service.wording(subscriber)
        if request.method == "GET" and subscriber.status == "pending":
            body = f"<p>{say(text['confirm_ask'], **names)}</p>"
            body += button(text["confirm_button"], ("confirm", "yes"))
            return page(service, language, text["confirm_title"], body)
        welcome = None
        if request.method == "POST" and service.subscribers.set_status(
            subscriber.id, "active", expected=["pending"]
        ):
            log.info("list %s: %s confirmed", subscriber.list_id, subscriber.id)
            Consent(service.store.engine).confirmed(subscriber, client_of(service, request))
            subscriber = service.subscribers.get(subscriber.id) or subscriber
            welcome = welcome_mail(service, subscriber, language)
        if subscriber.status != "active":  # left or bounced since: the link is spent
            return invalid(service)
        answer = notice(service, language, "confirm_title", "confirmed", names)
        if welcome is not None:
            answer.background = BackgroundTask(_send_confirmation, service, *welcome)
        return answer

    return handle


def welcome_mail(
    service: Service, subscriber: Subscriber, language: str
) -> tuple[int, Envelope, bytes] | None:
    """The list's welcome mail, queued and recorded, when the list asks for one."""
    from kabar.web.welcome import welcome_message

    mailing_list = service.mailing_list(subscriber.list_id)
    if mailing_list is None or not mailing_list.welcome:
        return None
    links = (
        service.links.preferences_url(subscriber.id),
        service.links.unsubscribe_url(subscriber.id),
    )
    message_id, message = welcome_message(service.config, mailing_list, subscriber, language, links)
    return _queue_mail(service, "welcome", mailing_list, subscriber, message_id, message)


def routes(
    config: Config, store: Store | None = None, *, closers: list[Callable[[], None]] | None = None
) -> list[BaseRoute]:
    """The subscribe and unsubscribe routes, for the app `kabar serve` runs; what they
    open themselves is closed by the function added to `closers`."""

    service = Service(config, store)
    if closers is not None:
        closers.append(service.close)
    return [
        Route(UNSUBSCRIBE_ROUTE, _unsubscribe(service), methods=["GET", "POST"]),
        Route(SUBSCRIBE_ROUTE, _subscribe_page(service), methods=["GET"]),
        Route(SUBSCRIBE_ROUTE, _subscribe(service), methods=["POST"]),
        Route(CONFIRM_ROUTE, _confirm(service), methods=["GET", "POST"]),
        *preferences.routes(service),
    ]
