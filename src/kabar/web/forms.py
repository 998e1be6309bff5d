"""The subscriber's forms: the sign-up form kabar serves (`GET /subscribe`) and the
preference centre's, with what both offer (the site's lists, their digests, the sections)
and the signed form token that lets kabar's own pages post without an Origin.

Why a token: kabar's pages send no Referer (Referrer-Policy: no-referrer), and with that
policy a browser sends `Origin: null` on a form post, so the Origin check alone would turn
kabar's own form away. The token is an HMAC of the time and the client's address (its /64
for IPv6): it proves the post follows a form kabar served to the same client within a
day, so a token fetched elsewhere cannot spread one site's posts over many visitors' IPs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from kabar.config import Config, MailingList
from kabar.store.tables import article_facets

TOKEN_FIELD = "form_token"  # noqa: S105 - a field name
TOKEN_AGE = 24 * 3600  # seconds a served form stays valid
MAX_SECTIONS = 40  # offered from the stored articles when the config names none

TEXT = {
    "id": {
        "intro": "Dapatkan berita pilihan kami lewat email. Anda bisa mengubah pilihan "
        "atau berhenti kapan saja.",
        "email": "Alamat email",
        "name": "Nama (tidak wajib)",
        "lists": "Buletin",
        "digests": "Edisi yang ingin Anda terima",
        "sections": "Rubrik",
        "sections_hint": "Biarkan kosong untuk menerima semua rubrik.",
        "language": "Bahasa email",
        "subscribe": "Berlangganan",
        "switch": "English",
        "honeypot": "Jangan isi kolom ini",
        "preferences_title": "Atur langganan",
        "preferences_intro": "Pengaturan untuk {email}.",
        "subscribed_to": "Berlangganan {list}",
        "save": "Simpan pilihan",
        "saved": "Pilihan Anda sudah disimpan.",
        "leave": "Berhenti dari semua buletin",
        "left": "{email} tidak akan lagi menerima email dari kami.",
        "download": "Unduh data saya (JSON)",
        "leave_heading": "Berhenti berlangganan",
    },
    "en": {
        "intro": "Get our selected news by email. You can change your choices or leave "
        "at any time.",
        "email": "Email address",
        "name": "Name (optional)",
        "lists": "Newsletters",
        "digests": "Editions you want to receive",
        "sections": "Sections",
        "sections_hint": "Leave all unticked to receive every section.",
        "language": "Email language",
        "subscribe": "Subscribe",
        "switch": "Bahasa Indonesia",
        "honeypot": "Leave this field empty",
        "preferences_title": "Manage your subscription",
        "preferences_intro": "Settings for {email}.",
        "subscribed_to": "Subscribe to {list}",
        "save": "Save my choices",
        "saved": "Your choices are saved.",
        "leave": "Leave every newsletter",
        "left": "{email} will receive no more email from us.",
        "download": "Download my data (JSON)",
        "leave_heading": "Unsubscribe",
    },
}
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}


# --- what is offered -------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What a subscriber can choose: lists with their digests, and sections."""

    lists: tuple[tuple[MailingList, tuple[tuple[str, str], ...]], ...]  # (list, (id, name))
    sections: tuple[str, ...]

    def digests_of(self, list_id: str) -> tuple[str, ...]:
        return next((tuple(d for d, _ in ds) for m, ds in self.lists if m.id == list_id), ())

    def list_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m, _ in self.lists)


def offer(config: Config, engine: Engine) -> Offer:
    """The config's lists and their digests; the sections the digests and feeds name, or
    (none named) the sections of the stored articles."""
    lists = tuple(
        (m, tuple((d.id, _digest_name(d.id)) for d in config.digests
                  if d.list_id == m.id))
        for m in config.lists
    )  # fmt: skip
    named = [s for d in config.digests for s in d.sections] + [
        s for f in config.feeds for s in f.sections
    ]
    if not named:
        query = (
            select(article_facets.c.value)
            .where(article_facets.c.facet == "section")
            .distinct()
            .order_by(article_facets.c.value)
            .limit(MAX_SECTIONS)
        )
        with engine.connect() as connection:
            named = [str(value) for value in connection.execute(query).scalars() if value]
    unique = {section.casefold(): section for section in reversed(named)}
    return Offer(lists, tuple(sorted(unique.values(), key=str.casefold)))


def _digest_name(digest_id: str) -> str:
    """A digest's name on the form: its id, readable ("harian" → "Harian")."""
    return digest_id.replace("-", " ").replace("_", " ").capitalize()


@dataclass(frozen=True)
class Choice:
    """What a posted form chose: lists (each with its digests; () for all of them) and
    sections (() for all)."""

    lists: dict[str, tuple[str, ...]]
    sections: tuple[str, ...]


def read_choice(form: object, offered: Offer, *, default_lists: Sequence[str]) -> Choice:
    """The choices in a posted form, keeping only what is offered (a hostile post cannot
    store arbitrary text). A list counts as chosen when ticked or when one of its digests
    is; every digest ticked (or none) means all of them, new ones included."""
    getlist = getattr(form, "getlist")  # noqa: B009 - starlette's FormData
    ticked_lists = {str(v) for v in getlist("list")}
    ticked_digests = {str(v) for v in getlist("digest")}
    wanted_sections = {str(v).casefold() for v in getlist("section")}
    lists: dict[str, tuple[str, ...]] = {}
    for list_id in offered.list_ids():
        digests = offered.digests_of(list_id)
        chosen = tuple(d for d in digests if d in ticked_digests)
        if (
            list_id in ticked_lists
            or chosen
            or (not ticked_lists and list_id in default_lists and not ticked_digests)
        ):
            lists[list_id] = () if len(chosen) in (0, len(digests)) else chosen
    sections = tuple(s for s in offered.sections if s.casefold() in wanted_sections)
    if len(sections) == len(offered.sections):
        sections = ()
    return Choice(lists, sections)


# --- the form token --------------------------------------------------------------------------


def form_token(secret: bytes, client: str, *, now: float | None = None) -> str:
    moment = str(int(now if now is not None else time.time()))
    return f"{moment}.{_mac(secret, moment, client)}"


def token_valid(secret: bytes, client: str, token: str, *, now: float | None = None) -> bool:
    moment, _, mac = token.partition(".")
    if not moment.isdigit() or len(token) > 80:
        return False
    age = (now if now is not None else time.time()) - int(moment)
    if not 0 <= age <= TOKEN_AGE:
        return False
    return hmac.compare_digest(_mac(secret, moment, client), mac)


def _mac(secret: bytes, moment: str, client: str) -> str:
    digest = hmac.new(secret, f"form|{moment}|{client}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


# --- HTML ------------------------------------------------------------------------------------

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.5;color:#1a1a1a}"
    "label{display:block;margin:.2rem 0}"
    "input[type=email],input[type=text]{display:block;width:100%;box-sizing:border-box;"
    "font-size:1rem;padding:.5rem;margin-bottom:.8rem;border:1px solid #767676;border-radius:4px}"
    "fieldset{border:1px solid #ccc;border-radius:4px;margin:0 0 1rem;padding:.5rem 1rem}"
    "legend{font-weight:600;padding:0 .3rem}"
    "input[type=checkbox],input[type=radio]{width:1.2rem;height:1.2rem;margin-right:.4rem;"
    "vertical-align:middle}"
    "button{font-size:1rem;padding:.6rem 1.2rem;background:#b4161b;color:#fff;border:0;"
    "border-radius:4px;cursor:pointer}"
    "button.quiet{background:#eee;color:#1a1a1a;border:1px solid #767676}"
    ":focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}"
    ".hint{font-size:.9rem;color:#555;margin:0 0 .4rem}"
    ".away{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}"
    "nav{text-align:right;font-size:.9rem}"
)


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def checkbox(name: str, value: str, label: str, *, checked: bool, ident: str) -> str:
    mark = " checked" if checked else ""
    return (
        f'<label for="{esc(ident)}"><input type="checkbox" id="{esc(ident)}" name="{esc(name)}" '
        f'value="{esc(value)}"{mark}>{esc(label)}</label>'
    )


def language_fieldset(text: dict[str, str], chosen: str) -> str:
    radios = "".join(
        f'<label for="locale-{code}"><input type="radio" id="locale-{code}" name="locale" '
        f'value="{code}"{" checked" if code == chosen else ""}>{esc(name)}</label>'
        for code, name in LANGUAGE_NAMES.items()
    )
    return f"<fieldset><legend>{esc(text['language'])}</legend>{radios}</fieldset>"


def sections_fieldset(text: dict[str, str], offered: Offer, chosen: Sequence[str]) -> str:
    if not offered.sections:
        return ""
    picked = {s.casefold() for s in chosen}
    boxes = "".join(
        checkbox("section", s, s, checked=s.casefold() in picked, ident=f"section-{i}")
        for i, s in enumerate(offered.sections)
    )
    return (
        f"<fieldset><legend>{esc(text['sections'])}</legend>"
        f'<p class="hint">{esc(text["sections_hint"])}</p>{boxes}</fieldset>'
    )


def lists_fieldsets(
    text: dict[str, str],
    offered: Offer,
    *,
    subscribed: dict[str, tuple[str, ...]],
    with_list_boxes: bool,
) -> str:
    """One fieldset per list: a box for the list itself (when there is more than one, or
    on the preference centre) and one per digest. `subscribed` maps each chosen list to
    its digests (() for all)."""
    parts = []
    for mailing_list, digests in offered.lists:
        name = mailing_list.name or mailing_list.id
        chosen = subscribed.get(mailing_list.id)
        inner = ""
        if with_list_boxes:
            inner += checkbox(
                "list", mailing_list.id, text["subscribed_to"].format(list=name),
                checked=chosen is not None, ident=f"list-{mailing_list.id}",
            )  # fmt: skip
        if len(digests) > 1:
            boxes = "".join(
                checkbox(
                    "digest",
                    digest_id,
                    label,
                    checked=chosen is None or not chosen or digest_id in chosen,
                    ident=f"digest-{digest_id}",
                )
                for digest_id, label in digests
            )
            inner += f'<p class="hint">{esc(text["digests"])}</p>{boxes}'
        elif not with_list_boxes:
            inner += f'<input type="hidden" name="list" value="{esc(mailing_list.id)}">'
        parts.append(f"<fieldset><legend>{esc(name)}</legend>{inner}</fieldset>")
    return "".join(parts)


def subscribe_form(
    text: dict[str, str], offered: Offer, *, language: str, action: str, token: str
) -> str:
    """The sign-up form's HTML: every field labelled, usable by keyboard alone, no script."""
    token_field = (
        f'<input type="hidden" name="{TOKEN_FIELD}" value="{esc(token)}">' if token else ""
    )
    return (
        f'<form method="post" action="{esc(action)}" accept-charset="utf-8">{token_field}'
        f'<label for="email">{esc(text["email"])}</label>'
        '<input type="email" id="email" name="email" required autocomplete="email" '
        'inputmode="email">'
        f'<label for="name">{esc(text["name"])}</label>'
        '<input type="text" id="name" name="name" autocomplete="name" maxlength="60">'
        + lists_fieldsets(
            text, offered, subscribed={m.id: () for m, _ in offered.lists[:1]},
            with_list_boxes=len(offered.lists) > 1,
        )
        + sections_fieldset(text, offered, ())
        + language_fieldset(text, language)
        + '<div class="away" aria-hidden="true">'
        f'<label for="website">{esc(text["honeypot"])}</label>'
        '<input type="text" id="website" name="website" tabindex="-1" autocomplete="off"></div>'
        f'<button type="submit">{esc(text["subscribe"])}</button></form>'
    )  # fmt: skip
