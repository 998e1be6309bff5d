"""Template loading shared by the email and the archive: where a template is found (an
admin's own, with the bundled ones behind it), the Jinja environment, and the error a
template that is missing or fails to render raises.
"""

from __future__ import annotations

import functools
import textwrap

import jinja2

from kabar.config import Config
from kabar.render.locale import Formatter
from kabar.resources import bundled


class RenderError(Exception):
    """A template is missing or doesn't render (with the template's name in the message)."""


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


def describe_template_error(exc: jinja2.TemplateError) -> str:
    where = getattr(exc, "filename", None) or getattr(exc, "name", None)
    line = getattr(exc, "lineno", None)
    location = f"{where}:{line}: " if where and line else (f"{where}: " if where else "")
    return f"{location}{exc.message or exc}"
