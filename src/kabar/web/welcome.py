"""The welcome mail a list may send once a subscription is confirmed (`welcome: true`),
from a plain-text Jinja template: the list's `welcome_template`, else the bundled
templates/welcome.txt.j2. Its words come from the message catalogs, in the reader's
language, like a digest's."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from zoneinfo import ZoneInfo

import jinja2

from kabar.config import Config, MailingList
from kabar.deliver.send import utcnow
from kabar.render.locale import Formatter
from kabar.render.templates import wrap
from kabar.resources import bundled
from kabar.subscribers import Subscriber
from kabar.text import one_line


def welcome_message(
    config: Config,
    mailing_list: MailingList,
    subscriber: Subscriber,
    language: str,
    links: tuple[str, str],
) -> tuple[str, bytes]:
    """The Message-ID and bytes of the welcome mail; `links` are the subscriber's
    preference centre and unsubscribe URLs."""
    formatter = Formatter(language, ZoneInfo(config.site.timezone))
    path = (
        config.resolve(mailing_list.welcome_template)
        if mailing_list.welcome_template
        else bundled("templates/welcome.txt.j2")
    )
    # Plain text: nothing is HTML-escaped, and the only visitor-given value (the name)
    # was kept only if it is letters and spaces.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"], trim_blocks=True,
        lstrip_blocks=True, autoescape=False,  # noqa: S701 - a text/plain mail
    )  # fmt: skip
    env.install_gettext_translations(formatter.translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["wrap"] = wrap
    list_name = mailing_list.name or mailing_list.id
    body = env.from_string(path.read_text(encoding="utf-8")).render(
        name=subscriber.name or formatter.gettext("reader"), list=list_name,
        site=config.site.title, preferences_url=links[0], unsubscribe_url=links[1],
    )  # fmt: skip
    domain = parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage(policy=SMTP)
    message["From"] = mailing_list.from_
    message["To"] = Address(addr_spec=subscriber.email)
    subject = formatter.translations.gettext("Welcome to %(list)s") % {"list": list_name}
    message["Subject"] = one_line(subject)
    message["Date"] = format_datetime(utcnow())
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["List-Unsubscribe"] = f"<{links[1]}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(body.strip() + "\n")
    return message_id, message.as_bytes()
