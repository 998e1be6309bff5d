"""Shared by the command modules: the App they are passed, exit statuses, fail and helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click

from kabar import config as config_module
from kabar.config import Config, ConfigError

EXIT_PARTIAL = 1
EXIT_USAGE = 2


class App:
    """What every command shares: the config (loaded on first use) and the store."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._store: Any = None

    @cached_property
    def config(self) -> Config:
        try:
            return config_module.load(self.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            sys.exit(EXIT_USAGE)

    @property
    def store(self) -> Any:
        if self._store is None:
            from sqlalchemy.exc import SQLAlchemyError

            from kabar.store import Store, masked_url

            url = self.config.database_url
            try:
                self._store = Store.open(url)
            except (OSError, ImportError, SQLAlchemyError) as exc:
                # A database kabar cannot reach is the setup's fault: one line, not a
                # traceback; the URL is masked, since it may carry the password.
                fail(f"storage.database: cannot open {masked_url(url)}: {db_reason(exc)}")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def db_reason(exc: Exception) -> str:
    if isinstance(exc, ImportError) and exc.name == "psycopg":
        return "the PostgreSQL driver is not installed (pip install 'kabar[postgres]')"
    reason = getattr(exc, "orig", None) or exc  # the driver's words, without SQLAlchemy's
    return " ".join(str(reason).split())


pass_app = click.make_pass_decorator(App)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"kabar: {message}", err=True)
    sys.exit(status)


class OptionError(click.BadParameter):
    """A bad option value, said as `--as-of: cannot read 'x' as an ISO 8601 time`."""

    def format_message(self) -> str:
        name = self.param.opts[0] if self.param is not None and self.param.opts else None
        return f"{name or self.param_hint or 'value'}: {self.message}"


EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


class IsoTime(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time option; without an offset it is the site's local time, as a
    `published` time without one is (UTC where no config is at hand)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise OptionError(
                f"cannot read {value!r} as an ISO 8601 time (such as 2026-11-27T07:00+07:00)",
                ctx=ctx, param=param,
            ) from None  # fmt: skip
        moment = moment if moment.tzinfo else moment.replace(tzinfo=_site_zone(ctx))
        if not EARLIEST <= moment < LATEST:  # and windows around it stay in datetime's range
            raise OptionError(
                f"{value!r} is out of range: give a time from {EARLIEST.year} to {LATEST.year - 1}",
                ctx=ctx, param=param,
            )  # fmt: skip
        return moment


def _site_zone(ctx: click.Context | None) -> tzinfo:
    ctx = ctx or click.get_current_context(silent=True)
    app = ctx.find_object(App) if ctx is not None else None
    return ZoneInfo(app.config.site.timezone) if app is not None else UTC


ISO_TIME = IsoTime()
# A --limit: at least 1, and within what a database integer holds (2**63 - 1).
LIMIT = click.IntRange(1, 2**63 - 1)


def known_digest(app: App, digest_id: str, option: str = "DIGEST") -> str:
    """The digest id if the config has it; else exit 2 naming the option and the ids."""
    known = [digest.id for digest in app.config.digests]
    if digest_id not in known:
        configured = ", ".join(known) or "none"
        fail(f"{option}: unknown digest id {digest_id!r} (configured: {configured})")
    return digest_id


@contextmanager
def file_progress(label: str) -> Iterator[Any]:
    """A rich progress bar on a terminal; nothing otherwise (logs say what happened)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def echo_json(value: Any) -> None:
    """One JSON object on a line of its own (the --json output of every command)."""
    click.echo(json.dumps(value, ensure_ascii=False))


def echo_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A plain table; piped, rows are kept whole instead of wrapped at 80 columns."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 1000).print(table)
