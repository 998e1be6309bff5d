"""Digest issues: choose the articles, render once per language, then make one message
per subscriber.

The contract the delivery stage relies on:

- `prepare_issue(..., locales=...)` selects and renders an issue (in its language and in
  each of the audience's `locales`), or returns None when the digest skips empty issues
  and there is nothing new;
- `PreparedIssue.message_for(recipient)` gives the complete RFC 5322 bytes for one
  subscriber, in the language of `recipient.locale`, with a Message-ID from
  `model.message_id(issue_key, subscriber_id, …)`, DKIM-signed when `delivery.dkim` is configured;
- `PreparedIssue.dump()` / `load_prepared(config, data)` store a rendered issue and bring it
  back without rendering again, so a resumed issue sends exactly what was rendered.

Rendering happens once per issue and language (kabar.render.email), never per
subscriber; a message only joins the subscriber's name and URLs into the rendered pieces
(kabar.mail).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parseaddr
from functools import cached_property
from html import escape
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from kabar.config import SUPPORTED_LANGUAGES, Config, Digest, Related
from kabar.links import safe_url
from kabar.mail.dkim import DkimSigner
from kabar.mail.message import BadRecipientError, MessageSkeleton
from kabar.mail.slots import SlotTemplate
from kabar.model import Article, Recipient, RelatedLink, article_id, message_id
from kabar.render.archive import archive_url
from kabar.render.email import CardView, IssueView, RelatedView, render_email
from kabar.render.locale import Formatter
from kabar.select import select_articles
from kabar.store import Store
from kabar.subscribers import Links, Subscribers, known_link_secret
from kabar.text import one_line, summarize

DUMP_FORMAT = 3
READABLE_FORMATS = (2, 3)  # 2: one language, stored before per-locale variants
RELATED_SUMMARY_LIMIT = 160
# An article's text in a card; ingest caps titles too, this also covers older articles.
TITLE_LIMIT = 300
SUMMARY_LIMIT = 600
PREHEADER_LIMIT = 200  # inbox previews show about 100 characters
_SUBJECT_FIELD = re.compile(r"\{(date|headline|count|site)\}")
_BODY_URL = re.compile(r"^(https?://|mailto:)[^\s<>\"]+$", re.IGNORECASE)


# --- related news ---------------------------------------------------------------------


class RelatedItemLike(Protocol):
    """The fields of kabar.related.RelatedItem a digest shows."""

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def published(self) -> datetime | None: ...


class RelatedProvider(Protocol):
    def related(
        self, article: Article, *, before: datetime, settings: Related, exclude: Collection[str]
    ) -> Sequence[RelatedItemLike]: ...


RelatedFactory = Callable[[Config, Store], RelatedProvider]


@dataclass(frozen=True)
class PublisherLink:
    """A related item the publisher chose (Article.related), shaped like RelatedItem."""

    title: str
    url: str
    summary: str
    published: datetime | None
    article_id: str | None
    score: float = 1.0
    reasons: tuple[str, ...] = ("chosen by publisher",)
    chosen_by_publisher: bool = True


class PublisherLinks:
    """Related news as publishers chose it. An article's own "Berita terkait" list comes
    first; then, for an article that a page lists, that page and the other items it
    lists beside this one (the publisher grouped them). Times come from the linked
    article when the store holds it (seed pages store each listed item as an article of
    its own). Like the engine, it shows a block only when it has at least `min_items`
    (default: per_item) items, never shows an excluded URL (the issue's own articles and
    the items already under other cards), and keeps to the window: an article's own list
    may link any story published before the issue, but a grouping borrowed from a page
    only stories known to be inside the window."""

    SCAN_LIMIT = 10_000  # newest articles searched for pages that list an article

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listed_on: dict[str, list[Article]] | None = None

    def related(
        self,
        article: Article,
        *,
        before: datetime,
        settings: Related,
        exclude: Collection[str] = (),
    ) -> list[PublisherLink]:
        from kabar.related import canonical_url  # the engine is loaded beside it anyway

        chosen: dict[str, PublisherLink] = {}
        excluded = {canonical_url(url) for url in exclude} | {canonical_url(article.url)}
        for link, linked, own in self._candidates(article):
            if len(chosen) == settings.per_item:
                break
            key = canonical_url(link.url) or f"#{len(chosen)}"
            if key in excluded or key in chosen:
                continue
            if linked is None and link.url:
                linked = self.store.get(article_id(article.source, link.url))
            if linked is not None and linked.published >= before:
                continue  # not published yet at issue time
            if not own and (linked is None or linked.published < before - settings.window):
                continue  # borrowed from a page: only what is known to be recent
            chosen[key] = PublisherLink(
                title=link.title,
                url=link.url,
                summary=link.summary or (linked.summary if linked else ""),
                published=linked.published if linked else None,
                article_id=linked.id if linked else None,
            )
        minimum = settings.per_item if settings.min_items is None else settings.min_items
        return list(chosen.values()) if len(chosen) >= minimum else []

    def _candidates(self, article: Article) -> Iterator[tuple[RelatedLink, Article | None, bool]]:
        """(link, the linked article if known, whether the link is the article's own)."""
        for link in article.related:
            yield link, None, True
        for page in self._pages_listing(article.url):
            yield RelatedLink(page.title, page.url, page.summary), page, False
            for link in page.related:
                yield link, None, False

    def _pages_listing(self, url: str) -> list[Article]:
        if self._listed_on is None:
            self._listed_on = {}
            for page in self.store.articles(limit=self.SCAN_LIMIT):
                for link in page.related:
                    self._listed_on.setdefault(link.url, []).append(page)
        return self._listed_on.get(url, []) if url else []


class EngineThenPublisher:
    """The engine's block; where it has none (too few good matches), the links that
    publishers placed together with the article."""

    def __init__(self, engine: RelatedProvider, publisher: PublisherLinks) -> None:
        self.engine = engine
        self.publisher = publisher

    def related(
        self,
        article: Article,
        *,
        before: datetime,
        settings: Related,
        exclude: Collection[str] = (),
    ) -> Sequence[RelatedItemLike]:
        found = self.engine.related(article, before=before, settings=settings, exclude=exclude)
        return found or self.publisher.related(
            article, before=before, settings=settings, exclude=exclude
        )


def open_related(config: Config, store: Store) -> RelatedProvider:
    """The related-news engine, with publishers' links where it finds too few."""
    from kabar.related import RelatedEngine  # loaded only when an issue is rendered

    return EngineThenPublisher(RelatedEngine.open(config, store), PublisherLinks(store))


def related_settings(config: Config, digest: Digest) -> Related:
    """The digest's own related settings, or the site-wide ones when it sets none."""
    return digest.related if "related" in digest.model_fields_set else config.related


# --- the prepared issue ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """The issue in one more language, for the subscribers who chose it."""

    language: str
    subject: str
    reader: str
    html: SlotTemplate
    text: SlotTemplate
    view: IssueView

    def dump(self) -> dict[str, Any]:
        return {
            "language": self.language, "subject": self.subject, "reader": self.reader,
            "html": self.html.to_dict(), "text": self.text.to_dict(), "view": self.view.to_dict(),
        }  # fmt: skip

    @classmethod
    def load(cls, data: dict[str, Any]) -> Variant:
        return cls(
            language=data["language"], subject=data["subject"], reader=data["reader"],
            html=SlotTemplate.from_dict(data["html"]), text=SlotTemplate.from_dict(data["text"]),
            view=IssueView.from_dict(data["view"]),
        )  # fmt: skip


@dataclass(frozen=True)
class PreparedIssue:
    """A rendered issue: everything needed to make each subscriber's message.

    Its own subject, html, text and view are in the issue's language (`view.language`);
    `variants` holds the same issue in each other language its audience chose, and
    each message is made from the subscriber's own (see `localised`)."""

    issue_key: str
    digest_id: str
    list_id: str
    subject: str
    article_ids: tuple[str, ...]
    issue_time: datetime
    sender: str
    list_header: str  # List-Id value: "Name <list.domain>"
    domain: str
    reader: str  # greets subscribers who gave no name
    html: SlotTemplate
    text: SlotTemplate
    view: IssueView
    reply_to: str | None = None
    feedback_id: str | None = None
    signer: DkimSigner | None = field(default=None, compare=False, repr=False)
    variants: tuple[Variant, ...] = ()
    _localised: dict[str, PreparedIssue] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def languages(self) -> tuple[str, ...]:
        return (self.view.language, *(variant.language for variant in self.variants))

    def localised(self, locale: str) -> PreparedIssue:
        """The issue as a subscriber with this locale gets it: their language's variant,
        or the issue's own language when they chose none (or one it was not rendered in,
        say a subscriber who joined after rendering)."""
        if not self.variants:
            return self
        variant = next((v for v in self.variants if v.language == locale), None)
        if variant is None:
            return self
        found = self._localised.get(locale)
        if found is None:  # kept, so each variant's MIME skeleton is built once
            found = replace(
                self, subject=variant.subject, reader=variant.reader, html=variant.html,
                text=variant.text, view=variant.view, variants=(),
            )  # fmt: skip
            self._localised[locale] = found
        return found

    @cached_property
    def skeleton(self) -> MessageSkeleton:
        return MessageSkeleton(
            sender=self.sender,
            subject=self.subject,
            date=self.issue_time,
            list_id=self.list_header,
            text=self.text,
            html_part=self.html,
            boundary_seed=self.issue_key,
            reply_to=self.reply_to,
            feedback_id=self.feedback_id,
            signer=self.signer,
        )

    def message_id_for(self, recipient: Recipient) -> str:
        return message_id(self.issue_key, recipient.subscriber_id, self.domain)

    def values_for(self, recipient: Recipient) -> dict[str, str]:
        """The slot values of one subscriber, unescaped (each part escapes its own)."""
        unsubscribe = recipient.unsubscribe_url or recipient.unsubscribe_mailto
        values = {
            "name": one_line(recipient.name) or self.reader,
            "unsubscribe_url": unsubscribe or recipient.preferences_url,
            "preferences_url": recipient.preferences_url or unsubscribe,
        }
        for key in ("unsubscribe_url", "preferences_url"):
            if not _BODY_URL.match(values[key]):
                raise BadRecipientError(
                    f"subscriber {recipient.subscriber_id}: {key} must be an http(s) or "
                    f"mailto URL, got {values[key]!r}"
                )
        return values

    def message_for(self, recipient: Recipient) -> bytes:
        issue = self.localised(recipient.locale)
        return issue.skeleton.build(
            email=recipient.email,
            name=recipient.name,
            message_id=issue.message_id_for(recipient),
            unsubscribe_url=recipient.unsubscribe_url,
            unsubscribe_mailto=recipient.unsubscribe_mailto,
            values=issue.values_for(recipient),
        )

    def html_for(self, recipient: Recipient) -> str:
        issue = self.localised(recipient.locale)
        values = issue.values_for(recipient)
        return issue.html.fill({key: escape(value) for key, value in values.items()})

    def text_for(self, recipient: Recipient) -> str:
        issue = self.localised(recipient.locale)
        return issue.text.fill(issue.values_for(recipient))

    def dump(self) -> dict[str, Any]:
        return {
            "format": DUMP_FORMAT,
            "issue_key": self.issue_key,
            "digest_id": self.digest_id,
            "list_id": self.list_id,
            "subject": self.subject,
            "article_ids": list(self.article_ids),
            "issue_time": self.issue_time.isoformat(),
            "sender": self.sender,
            "list_header": self.list_header,
            "domain": self.domain,
            "reader": self.reader,
            "html": self.html.to_dict(),
            "text": self.text.to_dict(),
            "view": self.view.to_dict(),
            "reply_to": self.reply_to,
            "feedback_id": self.feedback_id,
            "variants": [variant.dump() for variant in self.variants],
        }


def load_prepared(config: Config, data: dict[str, Any]) -> PreparedIssue:
    """A dumped issue, ready to send again exactly as rendered (signed with the key the
    config names now)."""
    if data.get("format") not in READABLE_FORMATS:
        raise ValueError(
            f"prepared issue {data.get('issue_key')!r} was stored in format "
            f"{data.get('format')!r}; this kabar reads format {DUMP_FORMAT}"
        )
    return PreparedIssue(
        issue_key=data["issue_key"],
        digest_id=data["digest_id"],
        list_id=data["list_id"],
        subject=data["subject"],
        article_ids=tuple(data["article_ids"]),
        issue_time=datetime.fromisoformat(data["issue_time"]),
        sender=data["sender"],
        list_header=data["list_header"],
        domain=data["domain"],
        reader=data["reader"],
        html=SlotTemplate.from_dict(data["html"]),
        text=SlotTemplate.from_dict(data["text"]),
        view=IssueView.from_dict(data["view"]),
        reply_to=data["reply_to"],
        feedback_id=data["feedback_id"],
        signer=DkimSigner.from_config(config),
        variants=tuple(Variant.load(variant) for variant in data.get("variants", ())),
    )


# --- preparing --------------------------------------------------------------------------


def prepare_issue(
    config: Config,
    store: Store,
    digest: Digest,
    *,
    issue_key: str,
    issue_time: datetime,
    since: datetime | None = None,
    related: RelatedFactory | None = None,
    exclude: Collection[str] = (),
    locales: Collection[str] = (),
) -> PreparedIssue | None:
    """Select the issue's articles and render it once per language; None if empty and
    skippable.

    `since` starts the window when the digest's window is `since_last` (the time of the
    last sent issue); otherwise the window is the configured duration before issue_time.
    `related` opens the related-news provider (default: kabar.related's engine);
    `exclude` holds ids of articles earlier issues carried. `locales` are those the
    audience chose (kabar.subscribers' `locales`): the issue is rendered in its own
    language and in each of these, never once per subscriber.
    """
    articles = select_articles(store, digest, issue_time=issue_time, since=since, exclude=exclude)
    if not articles and digest.skip_if_empty:
        return None
    mailing_list = config.mailing_list(digest.list_id)
    language = digest.locale or mailing_list.locale or config.site.language
    cards = _cards(config, store, digest, articles, issue_time, related or open_related)
    others = sorted(set(locales) & set(SUPPORTED_LANGUAGES) - {language})
    variants = [
        _render_variant(config, digest, issue_key, issue_time, cards, lang)
        for lang in (language, *others)
    ]
    kept = min(len(variant.view.cards) for variant in variants)
    variants = [  # every language carries the same articles: the ledger records one list
        _render_variant(config, digest, issue_key, issue_time, cards[:kept], v.language)
        if len(v.view.cards) > kept
        else v
        for v in variants
    ]
    main, *extra = variants
    domain = parseaddr(mailing_list.from_)[1].rpartition("@")[2] or "localhost"
    return PreparedIssue(
        issue_key=issue_key,
        digest_id=digest.id,
        list_id=mailing_list.id,
        subject=main.subject,
        article_ids=tuple(card.article_id for card in main.view.cards),
        issue_time=main.view.issue_time,
        sender=mailing_list.from_,
        list_header=f"{one_line(mailing_list.name or mailing_list.id)} "
        f"<{mailing_list.id}.{domain}>",
        domain=domain,
        reader=main.reader,
        html=main.html,
        text=main.text,
        view=main.view,
        reply_to=mailing_list.reply_to,
        feedback_id=_feedback_id(config, digest, issue_key),
        signer=DkimSigner.from_config(config),
        variants=tuple(extra),
    )


def _render_variant(
    config: Config,
    digest: Digest,
    issue_key: str,
    issue_time: datetime,
    cards: Sequence[CardView],
    language: str,
) -> Variant:
    """The issue rendered in one language (cards trimmed to fit, see render_email)."""
    mailing_list = config.mailing_list(digest.list_id)
    formatter = Formatter(language, ZoneInfo(config.site.timezone))
    fields = {
        "date": formatter.long_date(issue_time, weekday=False),
        "headline": cards[0].title if cards else "",
        "count": str(len(cards)),
        "site": config.site.title,
    }
    view = IssueView(
        issue_key=issue_key,
        digest_id=digest.id,
        subject=_fill(digest.subject, fields),
        preheader=summarize(
            _fill(digest.preheader, fields) or " · ".join(c.title for c in cards[:3]),
            PREHEADER_LIMIT,
        ),
        issue_time=issue_time.astimezone(ZoneInfo(config.site.timezone)),
        language=language,
        timezone=config.site.timezone,
        site_title=config.site.title,
        site_url=config.site.url,
        list_name=mailing_list.name or mailing_list.id,
        archive_url=archive_url(config, digest.id, issue_key),
        logo_url=safe_url(config.site.logo_url),
        contact=config.site.contact,
        cards=tuple(cards),
    )
    rendered = render_email(config, digest, view)
    return Variant(
        language=language,
        subject=view.subject,
        reader=formatter.gettext("reader"),
        html=rendered.html,
        text=rendered.text,
        view=rendered.view,
    )


def _cards(
    config: Config,
    store: Store,
    digest: Digest,
    articles: list[Article],
    issue_time: datetime,
    open_provider: RelatedFactory,
) -> list[CardView]:
    settings = related_settings(config, digest)
    provider = open_provider(config, store) if settings.per_item and articles else None
    # No story twice in one email: not a card's own article, nor one item under two cards.
    shown = {article.url for article in articles}
    minimum = settings.per_item if settings.min_items is None else settings.min_items
    cards = []
    try:
        for article in articles:
            items = (
                provider.related(article, before=issue_time, settings=settings, exclude=shown)
                if provider
                else ()
            )
            # Whatever the provider did with `exclude`, nothing shows twice; a block that
            # loses items here keeps to min_items like any other.
            given = [item for item in items if item.title.strip()]
            fresh = [item for item in given if item.url not in shown][: settings.per_item]
            if len(fresh) < min(len(given), settings.per_item, minimum):
                fresh = []
            shown.update(item.url for item in fresh)
            cards.append(_card(article, fresh, settings.per_item))
        return cards
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()


def _card(article: Article, related: Sequence[RelatedItemLike], limit: int) -> CardView:
    return CardView(
        article_id=article.id,
        title=summarize(one_line(article.title), TITLE_LIMIT),
        url=safe_url(article.url),
        section=one_line(article.section),
        summary=summarize(one_line(article.summary), SUMMARY_LIMIT),
        published=article.published,
        image_url=safe_url(article.image_url),
        image_alt=one_line(article.image_alt),
        credit=one_line(article.credit or ", ".join(article.authors)),
        related=tuple(
            RelatedView(
                title=one_line(item.title),
                url=safe_url(item.url),
                summary=summarize(item.summary, RELATED_SUMMARY_LIMIT),
                published=item.published,
            )
            for item in related
            if item.title.strip()
        )[:limit],
    )


def _fill(template: str, fields: dict[str, str]) -> str:
    """`{date}`, `{headline}`, `{count}` and `{site}` in one pass, so a headline that
    itself contains `{date}` stays as written; the result is one line."""
    return one_line(_SUBJECT_FIELD.sub(lambda match: fields[match.group(1)], template))


def _feedback_id(config: Config, digest: Digest, issue_key: str = "") -> str | None:
    pattern = config.delivery.feedback_id
    if not pattern:
        return None
    # Feedback-ID's fields are separated by ":", which the issue key also uses.
    issue = issue_key.replace(":", ".")
    filled = pattern.replace("{issue}", issue).replace("{digest}", digest.id)
    return one_line(filled.replace("{list}", digest.list_id))


# --- preview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What `kabar preview` wrote, and what it should tell."""

    issue: PreparedIssue
    files: list[Path]
    notes: list[str]
    dropped: list[str]  # titles left out so the HTML stays under Gmail's clip limit


PREVIEW_FILES = ("issue.html", "issue.txt", "issue.eml")


def write_preview(
    config: Config,
    store: Store,
    digest: Digest,
    *,
    folder: Path,
    issue_time: datetime,
    since: datetime | None = None,
    email: str | None = None,
    exclude: Collection[str] = (),
) -> Preview | None:
    """Prepare the issue due at issue_time and write issue.html, issue.txt and issue.eml
    for a subscriber (the list's own, when `email` is one, else a sample one); nothing is
    sent or recorded. `exclude` holds the articles earlier issues carried, as for the
    real issue. Returns None, with the old files removed, when no issue would be made."""
    for name in PREVIEW_FILES:  # never leave an older preview's files looking current
        (folder / name).unlink(missing_ok=True)
    config, note = preview_config(config)
    recipient, link_note = preview_recipient(config, store, digest, email)
    local_day = issue_time.astimezone(ZoneInfo(config.site.timezone)).date().isoformat()
    issue = prepare_issue(
        config,
        store,
        digest,
        issue_key=f"{digest.id}:{digest.list_id}:{local_day}",
        issue_time=issue_time,
        since=since,
        exclude=exclude,
        locales=[recipient.locale],
    )
    if issue is None:
        return None
    selected = select_articles(store, digest, issue_time=issue_time, since=since, exclude=exclude)
    kept = set(issue.article_ids)
    dropped = [one_line(a.title) for a in selected if a.id not in kept]
    contents = {
        "issue.html": issue.html_for(recipient).encode(),
        "issue.txt": issue.text_for(recipient).encode(),
        "issue.eml": issue.message_for(recipient),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    notes = [text for text in (note, link_note) if text]
    files = [folder / name for name in contents]
    return Preview(issue.localised(recipient.locale), files, notes, dropped)


def preview_config(config: Config) -> tuple[Config, str]:
    """The config for a preview: unsigned, with a note, when the DKIM key isn't set."""
    dkim = config.delivery.dkim
    if dkim is None or os.environ.get(dkim.key_env):
        return config, ""
    delivery = config.delivery.model_copy(update={"dkim": None})
    note = f"issue.eml is not DKIM-signed: {dkim.key_env} is not set"
    return config.model_copy(update={"delivery": delivery}), note


def preview_recipient(
    config: Config, store: Store, digest: Digest, email: str | None
) -> tuple[Recipient, str]:
    """The preview's subscriber, made by the same Links as real mail's, so its footer
    and List-Unsubscribe are what real mail carries: the list's own subscriber (name,
    locale and working links) when `email` is one, otherwise a sample one. Returns a
    note when the links can't work (no link secret exists yet)."""
    secret = known_link_secret(config, store.engine)
    note = ""
    if secret is None:
        secret = b"preview"
        note = (
            f"the preview's unsubscribe links are samples: {config.web.secret_env} is not set "
            "and no secret is stored yet"
        )
    links = Links(config, secret)
    found = Subscribers(store.engine).find(digest.list_id, email) if email else None
    if found is not None:
        return links.recipient(found.id, found.email, found.name, found.locale), note
    sender_domain = parseaddr(config.mailing_list(digest.list_id).from_)[1].rpartition("@")[2]
    sample = email or f"pembaca@{sender_domain or 'example.com'}"
    return links.recipient("preview", sample), note
