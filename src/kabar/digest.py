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

import hashlib
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parseaddr
from functools import cached_property
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kabar.config import SUPPORTED_LANGUAGES, TEXT_FIELDS, Config, Digest, Related
from kabar.links import safe_url
from kabar.mail.dkim import DkimSigner
from kabar.mail.message import BadRecipientError, MessageSkeleton
from kabar.mail.slots import SlotTemplate
from kabar.model import Article, Recipient, message_id
from kabar.render.email import render_email
from kabar.render.locale import Formatter
from kabar.render.view import CardView, IssueView, RelatedView
from kabar.select import select_articles
from kabar.store import Store
from kabar.subscribers import Links, Subscribers, choice_key, known_link_secret
from kabar.text import one_line, summarize
from kabar.urls import Urls

if TYPE_CHECKING:
    from kabar.related.fallback import RelatedItemLike, RelatedProvider

    RelatedFactory = Callable[[Config, Store], RelatedProvider]

DUMP_FORMAT = 3
READABLE_FORMATS = (2, 3)  # 2: one language, stored before per-locale variants
RELATED_SUMMARY_LIMIT = 160
# An article's text in a card; ingest caps titles too, this also covers older articles.
TITLE_LIMIT = 300
SUMMARY_LIMIT = 600
PREHEADER_LIMIT = 200  # inbox previews show about 100 characters
_SUBJECT_FIELD = re.compile(r"\{(" + "|".join(sorted(TEXT_FIELDS)) + r")\}")
_BODY_URL = re.compile(r"^(https?://|mailto:)[^\s<>\"]+$", re.IGNORECASE)


# --- related news ---------------------------------------------------------------------


def related_settings(config: Config, digest: Digest) -> Related:
    """The digest's own related settings, or the site-wide ones when it sets none."""
    return digest.related if "related" in digest.model_fields_set else config.related


# --- the prepared issue ---------------------------------------------------------------


def variant_key(language: str, sections: Sequence[str]) -> str:
    """How the ledger names a variant: its language and sections ("all" for every section;
    a short hash of the list otherwise, as a list of sections may be long)."""
    if not sections:
        return f"{language}/all"
    chosen = choice_key(sections).encode()
    return f"{language}/{hashlib.sha256(chosen).hexdigest()[:12]}"


@dataclass(frozen=True)
class Variant:
    """The issue in one more (language, sections) variant, for the subscribers who chose
    it: `sections` () is every section of the issue."""

    language: str
    subject: str
    reader: str
    html: SlotTemplate
    text: SlotTemplate
    view: IssueView
    sections: tuple[str, ...] = ()

    @cached_property
    def key(self) -> str:
        return variant_key(self.language, self.sections)

    def dump(self) -> dict[str, Any]:
        return {
            "language": self.language, "subject": self.subject, "reader": self.reader,
            "html": self.html.to_dict(), "text": self.text.to_dict(), "view": self.view.to_dict(),
            "sections": list(self.sections),
        }  # fmt: skip

    @classmethod
    def load(cls, data: dict[str, Any]) -> Variant:
        return cls(
            language=data["language"], subject=data["subject"], reader=data["reader"],
            html=SlotTemplate.from_dict(data["html"]), text=SlotTemplate.from_dict(data["text"]),
            view=IssueView.from_dict(data["view"]), sections=tuple(data.get("sections", ())),
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
        return tuple(dict.fromkeys((self.view.language, *(v.language for v in self.variants))))

    @property
    def key(self) -> str:
        return variant_key(self.view.language, ())

    def variant_for(self, locale: str, sections: Sequence[str] = ()) -> Variant | None:
        """The variant rendered for this (locale, sections), else for the locale with
        every section; None for the issue's own rendering (a locale it was not rendered
        in, say a subscriber who joined after rendering, gets that too)."""
        wanted = section_set(sections)
        for candidate in (wanted, ()) if wanted else ((),):
            if locale == self.view.language and not candidate:
                return None
            found = next(
                (v for v in self.variants if v.language == locale and v.sections == candidate),
                None,
            )
            if found is not None:
                return found
        if wanted and locale != self.view.language:  # their sections in the issue's language
            return self.variant_for(self.view.language, wanted)
        return None

    def route(self, locale: str, sections: Sequence[str]) -> tuple[str, bool]:
        """The variant key a subscriber gets, and whether it has any article (the ledger
        records a subscriber whose sections have nothing today as skipped)."""
        variant = self.variant_for(locale, sections)
        if variant is None:
            return self.key, bool(self.view.cards)
        return variant.key, bool(variant.view.cards)

    def localised(self, locale: str, sections: Sequence[str] = ()) -> PreparedIssue:
        """The issue as a subscriber with this locale (and these sections) gets it."""
        return self._as(self.variant_for(locale, sections))

    def by_key(self, key: str) -> PreparedIssue:
        """The issue as the variant the ledger names (`route`) renders it."""
        return self._as(self._variants_by_key.get(key))

    @cached_property
    def _variants_by_key(self) -> dict[str, Variant]:
        return {variant.key: variant for variant in self.variants}

    def _as(self, variant: Variant | None) -> PreparedIssue:
        if variant is None:
            return self
        found = self._localised.get(variant.key)
        if found is None:  # kept, so each variant's MIME skeleton is built once
            found = replace(
                self, subject=variant.subject, reader=variant.reader, html=variant.html,
                text=variant.text, view=variant.view, variants=(),
            )  # fmt: skip
            self._localised[variant.key] = found
        return found

    def _for(self, recipient: Recipient) -> PreparedIssue:
        if recipient.variant:
            return self.by_key(recipient.variant)
        return self.localised(recipient.locale)

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
        issue = self._for(recipient)
        return issue.skeleton.build(
            email=recipient.email,
            name=recipient.name,
            message_id=issue.message_id_for(recipient),
            unsubscribe_url=recipient.unsubscribe_url,
            unsubscribe_mailto=recipient.unsubscribe_mailto,
            values=issue.values_for(recipient),
        )

    def html_for(self, recipient: Recipient) -> str:
        issue = self._for(recipient)
        values = issue.values_for(recipient)
        return issue.html.fill({key: escape(value) for key, value in values.items()})

    def text_for(self, recipient: Recipient) -> str:
        issue = self._for(recipient)
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
    choices: Collection[tuple[str, tuple[str, ...]]] = (),
) -> PreparedIssue | None:
    """Select the issue's articles and render it once per language; None if empty and
    skippable.

    `since` starts the window when the digest's window is `since_last` (the time of the
    last sent issue); otherwise the window is the configured duration before issue_time.
    `related` opens the related-news provider (default: kabar.related's engine);
    `exclude` holds ids of articles earlier issues carried. `locales` are those the
    audience chose (kabar.subscribers' `locales`): the issue is rendered in its own
    language and in each of these, never once per subscriber. `choices` are the
    audience's distinct (locale, sections) pairs (kabar.subscribers' `choices`): each
    pair that picked sections gets a variant with only those sections' articles.
    """
    articles = select_articles(store, digest, issue_time=issue_time, since=since, exclude=exclude)
    if not articles and digest.skip_if_empty:
        return None
    mailing_list = config.mailing_list(digest.list_id)
    language = digest.locale or mailing_list.locale or config.site.language
    if related is None:
        from kabar.related.fallback import open_related  # the engine loads numpy and scipy

        related = open_related
    cards = _cards(config, store, digest, articles, issue_time, related)
    wanted = {(lang, ()) for lang in locales} | {
        (lang, section_set(sections)) for lang, sections in choices
    }
    pairs = sorted(
        {(lang if lang in SUPPORTED_LANGUAGES else language, sections) for lang, sections in wanted}
        - {(language, ())}
    )
    variants = _render_variants(
        config, digest, issue_key, issue_time, cards, [(language, ()), *pairs]
    )
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


def _render_variants(
    config: Config,
    digest: Digest,
    issue_key: str,
    issue_time: datetime,
    cards: Sequence[CardView],
    pairs: Sequence[tuple[str, tuple[str, ...]]],
) -> list[Variant]:
    """One rendering per (language, sections) pair, in order. Each language of one choice
    of sections carries the same articles (the ledger records one list per choice)."""
    rendered = [
        _render_variant(config, digest, issue_key, issue_time, in_sections(cards, sections),
                        language, sections)
        for language, sections in pairs
    ]  # fmt: skip
    kept: dict[tuple[str, ...], int] = {}
    for variant in rendered:
        count = len(variant.view.cards)
        kept[variant.sections] = min(kept.get(variant.sections, count), count)
    return [
        _render_variant(config, digest, issue_key, issue_time,
                        in_sections(cards, v.sections)[: kept[v.sections]], v.language, v.sections)
        if len(v.view.cards) > kept[v.sections]
        else v
        for v in rendered
    ]  # fmt: skip


def section_set(sections: Sequence[str]) -> tuple[str, ...]:
    """A choice of sections as variants compare them: case-folded, sorted, once each."""
    return tuple(sorted({section.casefold() for section in sections}))


def in_sections(cards: Sequence[CardView], sections: Sequence[str]) -> list[CardView]:
    """The cards of these sections (any case); every card when none are given."""
    if not sections:
        return list(cards)
    wanted = {section.casefold() for section in sections}
    return [card for card in cards if card.section.casefold() in wanted]


def _render_variant(
    config: Config,
    digest: Digest,
    issue_key: str,
    issue_time: datetime,
    cards: Sequence[CardView],
    language: str,
    sections: tuple[str, ...] = (),
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
        subject=_fill(digest.text("subject", language), fields),
        preheader=summarize(
            _fill(digest.text("preheader", language), fields)
            or " · ".join(c.title for c in cards[:3]),
            PREHEADER_LIMIT,
        ),
        issue_time=issue_time.astimezone(ZoneInfo(config.site.timezone)),
        language=language,
        timezone=config.site.timezone,
        site_title=config.site.title,
        site_url=config.site.url,
        list_name=mailing_list.name or mailing_list.id,
        archive_url=Urls(config).archive_page(digest.id, issue_key),
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
        sections=sections,
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
    recipient, link_notes = preview_recipient(config, store, digest, email)
    local_day = issue_time.astimezone(ZoneInfo(config.site.timezone)).date().isoformat()
    found = Subscribers(store.engine).find(digest.list_id, email) if email else None
    sections = found.sections if found else ()
    issue = prepare_issue(
        config,
        store,
        digest,
        issue_key=f"{digest.id}:{digest.list_id}:{local_day}",
        issue_time=issue_time,
        since=since,
        exclude=exclude,
        locales=[recipient.locale],
        choices=[(recipient.locale, sections)],
    )
    if issue is None:
        return None
    # The subscriber's own variant: their language and, if they picked any, sections.
    recipient = replace(recipient, variant=issue.route(recipient.locale, sections)[0])
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
    notes = [text for text in (note, *link_notes) if text]
    files = [folder / name for name in contents]
    return Preview(issue.by_key(recipient.variant), files, notes, dropped)


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
) -> tuple[Recipient, list[str]]:
    """The preview's subscriber, made by the same Links as real mail's, so its footer
    and List-Unsubscribe are what real mail carries: the list's own subscriber (name,
    locale and working links) when `email` is one, otherwise a sample one. Returns notes
    for what the admin might not expect: links that can't work (no link secret exists
    yet), or an `email` that is not on the list."""
    secret = known_link_secret(config, store.engine)
    notes = []
    if secret is None:
        secret = b"preview"
        notes.append(
            f"the preview's unsubscribe links are samples: {config.web.secret_env} is not set "
            "and no secret is stored yet"
        )
    links = Links(config, secret)
    found = Subscribers(store.engine).find(digest.list_id, email) if email else None
    if found is not None:
        return links.recipient(found.id, found.email, found.name, found.locale), notes
    if email:
        notes.append(
            f"{email} is not on list {digest.list_id}: this is a sample subscriber's message "
            "(no name, the digest's language), addressed to it"
        )
    sender_domain = parseaddr(config.mailing_list(digest.list_id).from_)[1].rpartition("@")[2]
    sample = email or f"pembaca@{sender_domain or 'example.com'}"
    return links.recipient("preview", sample), notes
