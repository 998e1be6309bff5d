"""The digest email: Jinja2 renders MJML (and the text part), MJML renders HTML, once.

Stage 1, Jinja with autoescape, fills `digest.mjml.j2` with the issue: every article
field is escaped, and where a subscriber's value goes it writes a slot marker (see
kabar.mail.slots). Stage 2, MJML (mjml-python, `fonts={}` unless fonts are configured),
turns that into email HTML. Nothing renders again per subscriber: messages join the
rendered pieces with escaped values, so article text is never read as template code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2
import mjml
from markupsafe import Markup

from kabar.config import Config, Digest
from kabar.mail.slots import SlotTemplate, new_markers
from kabar.render.locale import Formatter
from kabar.render.templates import (
    RenderError,
    describe_template_error,
    environment,
    template_paths,
)
from kabar.render.view import IssueView

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

# --- templates --------------------------------------------------------------------------


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
            "accent_dark": readable_on(self.accent_color, DARK_CARD),
            "font_family": font_family,
        }
        try:
            mjml_source = self.html.render(context)
            text = self.text.render({**context, "slots": markers})
        except jinja2.TemplateError as exc:
            raise RenderError(describe_template_error(exc)) from None
        return _mjml_to_html(mjml_source, self.fonts, self.include_loader), text


# The card's background in dark mode (templates/digest.mjml.j2's dark styles).
DARK_CARD = "#1e1e1e"
MIN_CONTRAST = 4.5  # WCAG AA for text under 18 pt


def readable_on(color: str, background: str) -> str:
    """`color`, mixed with white in steps until it reads on `background` (WCAG AA):
    a brand red such as #b4161b is 2.4:1 on a dark card, too dim for a section label."""
    for step in range(11):
        share = step / 10
        mixed = tuple(round(c + (255 - c) * share) for c in rgb(color))
        if contrast(mixed, rgb(background)) >= MIN_CONTRAST:
            return "#{:02x}{:02x}{:02x}".format(*mixed)
    return "#ffffff"


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def contrast(one: tuple[int, ...], other: tuple[int, ...]) -> float:
    lighter, darker = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(rgb: tuple[int, ...]) -> float:
    """Relative luminance (WCAG 2)."""
    linear = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


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
