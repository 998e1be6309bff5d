"""The `kabar bounces` and `kabar suppression` groups: what comes back, and who is never
mailed again."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kabar.cli.app import EXIT_PARTIAL, LIMIT, App, echo_json, echo_table, fail, pass_app


def _processor(app: App) -> Any:
    from kabar.inbound.process import Processor
    from kabar.subscribers import link_secret

    engine = app.store.engine
    return Processor(app.config, engine, link_secret(app.config, engine))


def _report(processor: Any, as_json: bool) -> None:
    tally = processor.tally
    if as_json:
        echo_json(tally.to_dict())
    else:
        click.echo(tally.describe())
        for key in tally.paused:
            click.echo(f"{key}: paused by the bounce-rate breaker (kabar status says why)")


@click.group()
def bounces() -> None:
    """Bounces, complaints, mailto unsubscribes and auto-replies that came back.

    Each returned message is recorded once (reading it again changes nothing), then moved:
    to the done folder, or, when kabar cannot understand it, to an "unrecognised" folder
    for a person. See the README ("What comes back") for the policy.
    """


@bounces.command("fetch")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@pass_app
def bounces_fetch(app: App, as_json: bool) -> None:
    """Read the configured mailbox (bounces.mailbox: a Maildir or IMAP) once.

    Exit status 2 when no mailbox is configured or it cannot be read.
    """
    from kabar.inbound.mailbox import MailboxError, fetch

    if app.config.bounces.mailbox is None:
        fail("no mailbox is configured: set bounces.mailbox (kind: maildir or imap)")
    processor = _processor(app)
    try:
        fetch(processor)
    except MailboxError as exc:
        fail(str(exc))
    _report(processor, as_json)


@bounces.command("process")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@pass_app
def bounces_process(app: App, path: Path, as_json: bool) -> None:
    """Read returned mail from PATH: an .eml file, an mbox, or a Maildir folder.

    The files stay where they are; reading them again changes nothing.
    """
    from kabar.inbound.mailbox import MailboxError, process_path

    processor = _processor(app)
    try:
        process_path(processor, path)
    except MailboxError as exc:
        fail(str(exc))
    _report(processor, as_json)


@bounces.command("list")
@click.option(
    "--kind",
    type=click.Choice(
        [
            "hard",
            "soft",
            "delayed",
            "delivered",
            "complaint",
            "unsubscribe",
            "auto_reply",
            "unrecognised",
        ]
    ),
    help="Only results of this kind.",
)
@click.option(
    "--limit",
    type=LIMIT,
    default=50,
    show_default=True,
    help="Show at most this many, the newest.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result.")
@pass_app
def bounces_list(app: App, kind: str | None, limit: int, as_json: bool) -> None:
    """Results read from what came back, newest first."""
    from kabar.inbound.events import recent

    rows = recent(app.store.engine, kind=kind, limit=limit)
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        click.echo("nothing has come back yet")
        return
    columns = ("received", "kind", "email", "status", "issue", "effect")
    echo_table(columns, ([str(row[c] or "") for c in columns] for row in rows))


@click.group()
def suppression() -> None:
    """The global suppression list: addresses, or whole domains, never mailed.

    No audience snapshot, import or subscription includes a suppressed address. A
    complaint adds the address; only an admin removes it.
    """


@suppression.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@pass_app
def suppression_list(app: App, as_json: bool) -> None:
    """Every entry, domains first."""
    from kabar.suppression import Suppressions

    entries = list(Suppressions(app.store.engine).entries())
    if as_json:
        for entry in entries:
            echo_json(entry.to_dict())
        return
    if not entries:
        click.echo("the suppression list is empty")
        return
    echo_table(
        ("value", "kind", "reason", "created", "detail"),
        (
            (e.value, e.kind, e.reason, e.created.isoformat(timespec="seconds"), e.detail)
            for e in entries
        ),
    )


@suppression.command("add")
@click.argument("entries", nargs=-1, required=True)
@click.option("--reason", default="admin", show_default=True, help="Why (kept with the entry).")
@pass_app
def suppression_add(app: App, entries: tuple[str, ...], reason: str) -> None:
    """Add ENTRIES: addresses, or domains (example.com or @example.com)."""
    from kabar.suppression import Suppressions

    store = Suppressions(app.store.engine)
    for text in entries:
        try:
            added = store.add(text, reason=reason)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="ENTRIES") from None
        click.echo(f"{'added' if added else 'already suppressed'}: {text.strip().lower()}")


@suppression.command("remove")
@click.argument("entries", nargs=-1, required=True)
@pass_app
def suppression_remove(app: App, entries: tuple[str, ...]) -> None:
    """Remove ENTRIES. A complained subscriber stays complained: removing the address
    only lets it subscribe (and confirm) again. Exit status 1 if one was not there."""
    from kabar.suppression import Suppressions

    store = Suppressions(app.store.engine)
    missing = False
    for text in entries:
        try:
            removed = store.remove(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="ENTRIES") from None
        missing |= not removed
        click.echo(f"{'removed' if removed else 'not on the list'}: {text.strip().lower()}")
    if missing:
        sys.exit(EXIT_PARTIAL)


@suppression.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def suppression_import(app: App, file: Path, as_json: bool) -> None:
    """Import entries from FILE, one address or domain a line (or a CSV whose first
    column holds them), to bring a list over from another sender. Each bad line is
    reported as FILE:LINE: reason and the rest imported; exit status 1 if any was bad."""
    from kabar.suppression import Suppressions

    with file.open(encoding="utf-8-sig") as handle:
        added, existing, problems = Suppressions(app.store.engine).import_lines(file, handle)
    if as_json:
        echo_json({"file": str(file), "added": added, "existing": existing, "rejected": problems})
    else:
        for line in problems:
            click.echo(line, err=True)
        click.echo(f"{file}: {added} added, {existing} already there, {len(problems)} rejected")
    if problems:
        sys.exit(EXIT_PARTIAL)
