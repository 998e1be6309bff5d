"""The preference centre: `/preferences/{token}`, what every digest's "Atur langganan"
link opens.

The token is signed for the subscriber and the purpose "preferences" (a forged or
altered one gets 404, as unsubscribe tokens do). It opens the settings of the address on
every list of the site: which lists, which of each list's digests, sections, language and
name; one button leaves everything; a link downloads all kabar holds about the address
(`/preferences/{token}/export`, the same JSON as `kabar subscribers export`). Every change
is recorded with its time, IP and user agent (kabar.consent).

The token proves the reader holds the mailbox (it came in their mail), so ticking a list
here joins it at once, with "preferences" as the consent's origin.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kabar.consent import Client, Consent, consent_record
from kabar.deliver.send import utcnow
from kabar.subscribers import Status, Subscriber
from kabar.urls import PREFERENCES_EXPORT_ROUTE, PREFERENCES_ROUTE
from kabar.web import forms
from kabar.web.pages import (
    TEXT,
    Service,
    clean_name,
    client_key,
    client_of,
    form_allowed,
    invalid,
    page,
    read_form,
)


def routes(service: Service) -> list[BaseRoute]:
    return [
        Route(PREFERENCES_ROUTE, _centre(service), methods=["GET", "POST"]),
        Route(PREFERENCES_EXPORT_ROUTE, _export(service), methods=["GET"]),
    ]


def _centre(service: Service) -> Callable[[Request], Awaitable[Response]]:

    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "preferences")
        if subscriber is None:
            return invalid(service)
        consent = Consent(service.store.engine)
        language = service.language(service.mailing_list(subscriber.list_id), subscriber)
        notice = ""
        if request.method == "POST":
            form = await read_form(request)
            if not form_allowed(service, request, str(form.get(forms.TOKEN_FIELD) or "")):
                text = forms.TEXT[language]
                return page(service, language, text["preferences_title"], "", status=403)
            client = client_of(service, request)
            if form.get("action") == "leave":
                _leave(consent, subscriber, client)
                text = forms.TEXT[language]
                body = f"<p>{forms.esc(text['left'].format(email=subscriber.email))}</p>"
                return page(service, language, text["leave_heading"], body)
            _save(service, consent, subscriber, form, client)
            refreshed = service.subscribers.get(subscriber.id) or subscriber
            language = service.language(service.mailing_list(refreshed.list_id), refreshed)
            notice = forms.TEXT[language]["saved"]
        rows = consent.rows_of(subscriber.email)
        text = forms.TEXT[language]
        token = forms.form_token(service.links.secret, _client_key(service, request))
        body = _centre_html(service, text, rows, language, token, notice)
        return page(service, language, text["preferences_title"], body)

    return handle


def _client_key(service: Service, request: Request) -> str:

    return client_key(service.client_ip(request))


def _centre_html(
    service: Service,
    text: dict[str, str],
    rows: list[Subscriber],
    language: str,
    token: str,
    notice: str,
) -> str:
    offered = forms.offer(service.config, service.store.engine)
    subscribed = {row.list_id: row.digests for row in rows if row.status in ("active", "pending")}
    first = rows[0]
    sections = next((row.sections for row in rows if row.status == "active"), first.sections)
    token_field = f'<input type="hidden" name="{forms.TOKEN_FIELD}" value="{forms.esc(token)}">'
    status = f'<p role="status">{forms.esc(notice)}</p>' if notice else ""
    return (
        status
        + f"<p>{forms.esc(text['preferences_intro'].format(email=first.email))}</p>"
        + f'<form method="post" accept-charset="utf-8">{token_field}'
        + '<input type="hidden" name="action" value="save">'
        + f'<label for="name">{forms.esc(text["name"])}</label>'
        + f'<input type="text" id="name" name="name" autocomplete="name" maxlength="60" '
        f'value="{forms.esc(first.name)}">'
        + forms.lists_fieldsets(text, offered, subscribed=subscribed, with_list_boxes=True)
        + forms.sections_fieldset(text, offered, sections)
        + forms.language_fieldset(text, first.locale or language)
        + f'<button type="submit">{forms.esc(text["save"])}</button></form>'
        + f'<p><a href="{forms.esc(_export_path(service, first))}" download>'
        f"{forms.esc(text['download'])}</a></p>"
        + f'<form method="post">{token_field}<input type="hidden" name="action" value="leave">'
        f'<button type="submit" class="quiet">{forms.esc(text["leave"])}</button></form>'
    )


def _export_path(service: Service, subscriber: Subscriber) -> str:
    from kabar.subscribers import sign

    token = sign(service.links.secret, "preferences", subscriber.id)
    return PREFERENCES_EXPORT_ROUTE.format(token=token)


def _save(
    service: Service, consent: Consent, subscriber: Subscriber, form: object, client: Client
) -> None:
    """Apply the posted choices to every list of the address; record each change."""

    offered = forms.offer(service.config, service.store.engine)
    choice = forms.read_choice(form, offered, default_lists=())
    get = getattr(form, "get")  # noqa: B009 - starlette's FormData
    name = clean_name(str(get("name") or ""))
    locale = str(get("locale") or "")
    locale = locale if locale in TEXT else subscriber.locale
    rows = {row.list_id: row for row in consent.rows_of(subscriber.email)}
    for list_id in offered.list_ids():
        row = rows.get(list_id)
        wanted = choice.lists.get(list_id)
        if row is None and wanted is not None:
            record = consent_record("preferences", now=utcnow(), client=client, language=locale) | {
                "confirmed_at": utcnow().isoformat(),
                "confirmed_ip": client.ip,
            }
            made, _ = service.subscribers.add(
                list_id, subscriber.email, name=name, locale=locale, origin="web",
                digests=wanted, sections=choice.sections, consent=record,
            )  # fmt: skip
            consent.record(made.id, "subscribed", {"origin": "preferences"}, client)
        elif row is not None:
            joined = wanted is not None
            status: Status | None = None
            if joined and row.status != "active":
                status = "active"
            elif not joined and row.status in ("active", "pending"):
                status = "unsubscribed"
            consent.change(
                row, client, name=name, locale=locale, sections=choice.sections,
                digests=wanted if joined else None, status=status,
            )  # fmt: skip


def _leave(consent: Consent, subscriber: Subscriber, client: Client) -> None:
    for row in consent.rows_of(subscriber.email):
        if row.status in ("active", "pending"):
            consent.change(row, client, status="unsubscribed")


def _export(service: Service) -> Callable[[Request], Awaitable[Response]]:

    async def handle(request: Request) -> Response:
        subscriber = service.from_token(request.path_params["token"], "preferences")
        if subscriber is None:
            return invalid(service)
        data = Consent(service.store.engine).export(subscriber.email)
        return Response(
            json.dumps(data, ensure_ascii=False, indent=2) + "\n",
            media_type="application/json",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": 'attachment; filename="kabar-data.json"',
            },
        )

    return handle
