"""The welcome mail a list may send once a subscription is confirmed (`welcome: true`),
from a plain-text Jinja template: the list's `welcome_template` ("{lang}" stands for the
language), else the bundled templates/welcome.{id,en}.txt.j2."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr

from jinja2 import Environment, StrictUndefined

from kabar.config import Config, MailingList
from kabar.deliver.send import utcnow
from kabar.resources import bundled
from kabar.subscribers import Subscriber
from kabar.text import one_line

SUBJECT = {"id": "Selamat datang di {list}", "en": "Welcome to {list}"}


def welcome_message(
    config: Config,
    mailing_list: MailingList,
    subscriber: Subscriber,
    language: str,
    links: tuple[str, str],
) -> tuple[str, bytes]:
    """The Message-ID and bytes of the welcome mail; `links` are the subscriber's
    preference centre and unsubscribe URLs."""
    if mailing_list.welcome_template:
        path = config.resolve(mailing_list.welcome_template.replace("{lang}", language))
    else:
        path = bundled(f"templates/welcome.{language}.txt.j2")
    # Plain text: nothing is HTML-escaped, and the only visitor-given value (the name)
    # was kept only if it is letters and spaces.
    template = Environment(undefined=StrictUndefined, autoescape=False).from_string(  # noqa: S701
        path.read_text(encoding="utf-8")
    )
    list_name = mailing_list.name or mailing_list.id
    body = template.render(
        name=subscriber.name, list=list_name, site=config.site.title,
        preferences_url=links[0], unsubscribe_url=links[1],
    )  # fmt: skip
    domain = parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage(policy=SMTP)
    message["From"] = mailing_list.from_
    message["To"] = Address(addr_spec=subscriber.email)
    message["Subject"] = one_line(SUBJECT.get(language, SUBJECT["en"]).format(list=list_name))
    message["Date"] = format_datetime(utcnow())
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["List-Unsubscribe"] = f"<{links[1]}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(body)
    return message_id, message.as_bytes()
