"""The digest email: Jinja2 renders MJML (and the text part), MJML renders HTML, once.

Stage 1, Jinja with autoescape, fills `digest.mjml.j2` with the issue: every article
field is escaped, and where a subscriber's value goes it writes a slot marker (see
kabar.mail.slots). Stage 2, MJML (mjml-python, `fonts={}` unless fonts are configured),
turns that into email HTML. Nothing renders again per subscriber: messages join the
rendered pieces with escaped values, so article text is never read as template code.
"""

from __future__ import annotations

import functools
import logging
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import mjml
from markupsafe import Markup

from kabar.config import Config, Digest
from kabar.mail.slots import SlotTemplate, new_markers
from kabar.render.locale import Formatter
from kabar.resources import bundled

log = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
# Gmail cuts HTML above about 102 KB behind a "[Message clipped]" link, which also hides
# the unsubscribe footer. Keep the rendered HTML under this, leaving room for the
# subscriber's values (two URLs and a name) that are joined in later.
HTML_BUDGET = 100_000
PERSONAL_ALLOWANCE = 1_000
# Unquoted: Jinja would escape the quotes, and MRML then misses configured fonts.
DEFAULT_FONTS = "Helvetica Neue, Helvetica, Arial, sans-serif"

# --- what a template sees ----------------------------------------------------------------


@dataclass(frozen=True)
class RelatedView:
    title: str
    url: str
    summary: str
    published: datetime | None


@dataclass(frozen=True)
class CardView:
    article_id: str
    title: str
    url: str
    section: str
    summary: str
    published: datetime
    image_url: str = ""
    image_alt: str = ""
    credit: str = ""
    related: tuple[RelatedView, ...] = ()


@dataclass(frozen=True)
class IssueView:
    """One issue as its templates see it; JSON round-trips through to_dict/from_dict so
    the archive can render a sent issue without the store."""

    issue_key: str
    digest_id: str
    subject: str
    preheader: str
    issue_time: datetime
    language: str
    timezone: str
    site_title: str
    site_url: str
    list_name: str
    archive_url: str
    logo_url: str = ""
    contact: str = ""
    cards: tuple[CardView, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IssueView:
        values = dict(data)
        values["issue_time"] = datetime.fromisoformat(values["issue_time"])
        values["cards"] = tuple(_card_from_dict(card) for card in values["cards"])
        return cls(**values)

    def formatter(self) -> Formatter:
        return Formatter(self.language, ZoneInfo(self.timezone))


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    return value


def _card_from_dict(data: Mapping[str, Any]) -> CardView:
    values = dict(data)
    values["published"] = datetime.fromisoformat(values["published"])
    values["related"] = tuple(
        RelatedView(**{**item, "published": _optional_time(item["published"])})
        for item in values["related"]
    )
    return CardView(**values)


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- templates --------------------------------------------------------------------------


def template_paths(
    config: Config, configured: str | None, default: str
) -> tuple[tuple[str, ...], str]:
    """(search path, template name): an admin's template by path, with the bundled
    templates behind it for `{% include %}` and `{% extends %}`."""
    bundled_dir = str(bundled("templates"))
    if configured is None:
        return (bundled_dir,), default
    path = config.resolve(configured)
    if not path.is_file():
        raise RenderError(f"template {configured!r} not found (looked for {path})")
    return (str(path.parent), bundled_dir), path.name


@functools.lru_cache(maxsize=32)
def environment(
    search_path: tuple[str, ...], formatter: Formatter, *, html: bool
) -> jinja2.Environment:
    """A Jinja environment per template folder, language and part; kept for the process
    so templates compile once (Jinja still reloads a template whose file changed)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        autoescape=html,  # noqa: S701 - off only for the text/plain part
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_translations(formatter.translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        datetime=formatter.long_datetime,
        date=formatter.long_date,
        ago=lambda moment, now: formatter.ago(moment, now) if moment else "",
        wrap=wrap,
    )
    return env


def wrap(text: str, width: int, indent: str = "") -> str:
    """Plain-text wrapping that never splits a URL or an Indonesian reduplication
    (`diam-diam`), unlike Jinja's wordwrap; lines after the first get `indent`."""
    lines = textwrap.wrap(
        text, width, break_long_words=False, break_on_hyphens=False, subsequent_indent=indent
    )
    return "\n".join(lines)


class RenderError(Exception):
    """A template is missing or doesn't render (with the template's name in the message)."""


@dataclass(frozen=True)
class RenderedEmail:
    """The issue's HTML and text, cut at the subscriber slots."""

    html: SlotTemplate
    text: SlotTemplate
    view: IssueView  # with the cards that fit (see render_email)


@dataclass(frozen=True)
class EmailTemplates:
    """The digest's two templates, loaded once; `render` may run several times while
    trimming an issue that is too large."""

    html: jinja2.Template
    text: jinja2.Template
    fonts: Mapping[str, str]
    accent_color: str
    include_loader: mjml.IncludeLoader

    @classmethod
    def load(cls, config: Config, digest: Digest, formatter: Formatter) -> EmailTemplates:
        html_path, html_name = template_paths(config, digest.templates.html, HTML_TEMPLATE)
        text_path, text_name = template_paths(config, digest.templates.text, TEXT_TEMPLATE)
        try:
            html = environment(html_path, formatter, html=True).get_template(html_name)
            text = environment(text_path, formatter, html=False).get_template(text_name)
        except jinja2.TemplateError as exc:
            raise RenderError(f"digest {digest.id}: {describe_template_error(exc)}") from None
        return cls(
            html=html,
            text=text,
            fonts=dict(digest.templates.fonts),
            accent_color=digest.templates.accent_color,
            include_loader=_include_loader(html_path),
        )

    def render(self, view: IssueView, markers: Mapping[str, str]) -> tuple[str, str]:
        # The markers are kabar's own letters and digits, never article text.
        slots = {name: Markup(marker) for name, marker in markers.items()}  # noqa: S704
        font_family = ", ".join([*self.fonts, DEFAULT_FONTS])
        context = {
            "issue": view,
            "slots": slots,
            "accent": self.accent_color,
            "font_family": font_family,
        }
        try:
            mjml_source = self.html.render(context)
            text = self.text.render({**context, "slots": markers})
        except jinja2.TemplateError as exc:
            raise RenderError(describe_template_error(exc)) from None
        return _mjml_to_html(mjml_source, self.fonts, self.include_loader), text


def describe_template_error(exc: jinja2.TemplateError) -> str:
    where = getattr(exc, "filename", None) or getattr(exc, "name", None)
    line = getattr(exc, "lineno", None)
    location = f"{where}:{line}: " if where and line else (f"{where}: " if where else "")
    return f"{location}{exc.message or exc}"


def _include_loader(search_path: tuple[str, ...]) -> mjml.IncludeLoader:
    def load(path: str) -> str:
        for folder in search_path:
            candidate = Path(folder) / path
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        raise FileNotFoundError(f"mj-include {path!r} not found in {search_path}")

    return load


def _mjml_to_html(source: str, fonts: Mapping[str, str], loader: mjml.IncludeLoader) -> str:
    try:
        return mjml.mjml2html(source, fonts=dict(fonts), include_loader=loader)
    except ValueError as exc:
        raise RenderError(f"MJML could not render the digest template: {exc}") from None


def render_email(config: Config, digest: Digest, view: IssueView) -> RenderedEmail:
    """Render the issue once. If its HTML would pass Gmail's clip limit, warn and keep
    the most articles (from the top) that fit."""
    templates = EmailTemplates.load(config, digest, view.formatter())
    markers = new_markers()
    renders: dict[int, tuple[IssueView, str, str]] = {}

    def fits(count: int) -> bool:
        current = replace(view, cards=view.cards[:count])
        html, text = templates.render(current, markers)
        renders[count] = (current, html, text)
        return len(html.encode()) + PERSONAL_ALLOWANCE <= HTML_BUDGET

    total = len(view.cards)
    kept = total
    if not fits(total) and total > 1:
        low, high = 1, total - 1  # the largest count that fits lies in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        kept = low
        if kept not in renders:
            fits(kept)
        log.warning(
            "digest %s: %d of %d articles left out so the HTML stays under Gmail's clip "
            "limit (%d bytes); lower max_items or related.per_item",
            digest.id, total - kept, total, HTML_BUDGET,
        )  # fmt: skip
    current, html, text = renders[kept]
    rendered = RenderedEmail(
        html=SlotTemplate.split(html, markers),
        text=SlotTemplate.split(text, markers),
        view=current,
    )
    for part, template in (("html", rendered.html), ("text", rendered.text)):
        if "unsubscribe_url" not in template.slots:
            raise RenderError(
                f"digest {digest.id}: the {part} template shows no unsubscribe link; "
                "bulk senders must show one (use {{ slots.unsubscribe_url }})"
            )
    return rendered
