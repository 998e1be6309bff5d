"""Digest issues: choose the articles, render once, then make one message per subscriber.

The contract the delivery stage relies on:

- `prepare_issue(...)` selects and renders an issue, or returns None when the digest
  skips empty issues and there is nothing new;
- `PreparedIssue.message_for(recipient)` gives the complete RFC 5322 bytes for one
  subscriber, with a Message-ID from `model.message_id(issue_key, subscriber_id, …)`;
- `PreparedIssue.dump()` / `load_prepared(config, data)` store a rendered issue and bring it
  back without rendering again, so a resumed issue sends exactly what was rendered.

This first version renders a plain-text digest only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import Any

from kabar.config import Config, Digest
from kabar.model import Recipient, message_id
from kabar.store import Store


@dataclass(frozen=True)
class PreparedIssue:
    issue_key: str
    digest_id: str
    list_id: str
    sender: str
    subject: str
    text: str
    article_ids: tuple[str, ...]
    issue_time: datetime
    domain: str

    def message_id_for(self, recipient: Recipient) -> str:
        return message_id(self.issue_key, recipient.subscriber_id, self.domain)

    def message_for(self, recipient: Recipient) -> bytes:
        message = EmailMessage(policy=SMTP)
        message["From"] = self.sender
        message["To"] = Address(recipient.name, addr_spec=recipient.email)
        message["Subject"] = self.subject
        message["Date"] = format_datetime(self.issue_time)
        message["Message-ID"] = self.message_id_for(recipient)
        message["List-Id"] = f"<{self.list_id}.{self.domain}>"
        if recipient.unsubscribe_url:
            message["List-Unsubscribe"] = f"<{recipient.unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        footer = f"\n\n--\nUnsubscribe: {recipient.unsubscribe_url}\n"
        message.set_content(self.text + footer)
        return message.as_bytes()

    def dump(self) -> dict[str, Any]:
        return {
            "issue_key": self.issue_key, "digest_id": self.digest_id, "list_id": self.list_id,
            "sender": self.sender, "subject": self.subject, "text": self.text,
            "article_ids": list(self.article_ids), "issue_time": self.issue_time.isoformat(),
            "domain": self.domain,
        }  # fmt: skip


def load_prepared(config: Config, data: dict[str, Any]) -> PreparedIssue:
    return PreparedIssue(
        **{**data, "article_ids": tuple(data["article_ids"]),
           "issue_time": datetime.fromisoformat(data["issue_time"])}
    )  # fmt: skip


def prepare_issue(
    config: Config,
    store: Store,
    digest: Digest,
    *,
    issue_key: str,
    issue_time: datetime,
    since: datetime | None = None,
) -> PreparedIssue | None:
    """Select the issue's articles and render it once; None if empty and skippable.

    `since` starts the window when the digest's window is `since_last` (the time of the
    last sent issue); otherwise the window is the configured duration before issue_time.
    """
    start = since if digest.window == "since_last" else issue_time - _window(digest)
    chosen = list(
        store.articles(
            sources=digest.sources, since=start, before=issue_time, limit=digest.max_items
        )
    )
    if not chosen and digest.skip_if_empty:
        return None
    mailing_list = config.mailing_list(digest.list_id)
    text = "\n\n".join(f"{a.title}\n{a.summary}\n{a.url}" for a in chosen)
    return PreparedIssue(
        issue_key=issue_key,
        digest_id=digest.id,
        list_id=mailing_list.id,
        sender=mailing_list.from_,
        subject=digest.subject.replace("{date}", issue_time.date().isoformat()),
        text=text,
        article_ids=tuple(a.id for a in chosen),
        issue_time=issue_time,
        domain=parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost",
    )


def _window(digest: Digest) -> timedelta:
    assert isinstance(digest.window, timedelta)
    return digest.window
