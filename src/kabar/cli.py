"""The `kabar` command.

Exit status: 0 when everything worked, 1 when some input or delivery failed (the rest
was still done), 2 for a bad config or bad usage.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from kabar import __version__
from kabar import config as config_module
from kabar.config import Config, ConfigError, MissingSecretError

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
            from kabar.store import Store

            self._store = Store.open(self.config.database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_app = click.make_pass_decorator(App)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"kabar: {message}", err=True)
    sys.exit(status)


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from the command line; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-11-27T07:00+07:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="kabar")
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="KABAR_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file [env KABAR_CONFIG; default: config/kabar.yaml, then kabar.yaml].",
)
@click.option("-v", "--verbose", count=True, help="Say more (debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """kabar publishes news: feeds for readers, email digests for subscribers.

    Typical use: edit config/kabar.yaml, run `kabar check`, `kabar publish`, then
    `kabar run` as a daemon.
    """
    from kabar import log

    log.setup(verbose, quiet=quiet)
    app = App(config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


@cli.command()
@pass_app
def check(app: App) -> None:
    """Validate the config file; print FILE:LINE:COL: path: message per problem.

    Exits 0 and prints a one-line summary when the file is valid, 2 otherwise.
    """
    click.echo(config_module.summary(app.config))


@cli.command()
@click.argument("source_ids", nargs=-1, metavar="[SOURCE_ID]...")
@click.option(
    "--path",
    type=click.Path(exists=True, path_type=Path),
    help="Ingest this file or folder instead of the configured paths (format detected per file).",
)
@click.option(
    "--as-of",
    help="Resolve relative times ('4 jam lalu') against this ISO 8601 time "
    "instead of each file's modification time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per source.")
@pass_app
def ingest(
    app: App, source_ids: tuple[str, ...], path: Path | None, as_of: str | None, as_json: bool
) -> None:
    """Read articles from sources into the store.

    With no SOURCE_ID, every configured source is ingested. A file that can't be read is
    reported as PATH: reason and skipped; the exit status is 1 if any file failed.
    """
    from kabar.ingest import ingest_path

    moment = parse_time(as_of)
    if path is not None:
        if len(source_ids) > 1:
            raise click.UsageError(
                "--path takes at most one SOURCE_ID (the source to file them under)"
            )
        with file_progress(f"ingest {path}") as progress:
            reports = [
                ingest_path(
                    app.config,
                    app.store,
                    path,
                    source_ids[0] if source_ids else "local",
                    as_of=moment,
                    progress=progress,
                )
            ]
    else:
        reports = _ingest_sources(app, source_ids, moment)
    _print_reports(reports, as_json)
    if any(report.failures for report in reports):
        sys.exit(EXIT_PARTIAL)


def _ingest_sources(app: App, source_ids: tuple[str, ...], as_of: datetime | None) -> list[Any]:
    from kabar.ingest import ingest_source

    known = {source.id: source for source in app.config.sources}
    unknown = [source_id for source_id in source_ids if source_id not in known]
    if unknown:
        fail(
            f"unknown source id(s): {', '.join(unknown)} (configured: {', '.join(known) or 'none'})"
        )
    reports = []
    for source_id in source_ids or tuple(known):
        with file_progress(f"ingest {source_id}") as progress:
            reports.append(
                ingest_source(
                    app.config, app.store, known[source_id], as_of=as_of, progress=progress
                )
            )
    return reports


def _print_reports(reports: list[Any], as_json: bool) -> None:
    for report in reports:
        if as_json:
            click.echo(json.dumps({
                "source": report.source, "files": report.files,
                "inserted": report.stored.inserted, "updated": report.stored.updated,
                "unchanged": report.stored.unchanged, "not_modified": report.not_modified,
                "failures": report.failures, "warnings": report.warnings,
            }, ensure_ascii=False))  # fmt: skip
        else:
            for failure in report.failures:
                click.echo(failure, err=True)
            click.echo(report.describe())


@cli.command()
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line, every stored field."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N articles.")
@click.option("--source", "source_id", help="Only articles from this source.")
@pass_app
def articles(app: App, as_json: bool, limit: int | None, source_id: str | None) -> None:
    """List stored articles, newest first."""
    found = app.store.articles(sources=[source_id] if source_id else None, limit=limit)
    if as_json:
        for article in found:
            click.echo(json.dumps(article.to_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("published", "id", "source", "section", "title", box=None, pad_edge=False)
    for article in found:
        table.add_row(
            article.published.strftime("%Y-%m-%d %H:%M %z"), article.id, article.source,
            article.section, article.title,
        )  # fmt: skip
    Console(soft_wrap=not sys.stdout.isatty()).print(table)


@cli.command()
@click.option("--as-of", help="Resolve relative times against this ISO 8601 time.")
@pass_app
def publish(app: App, as_of: str | None) -> None:
    """The main job, once: ingest every source, then build feeds and digests.

    Each digest's issue for the current period is made and delivered (like `kabar send
    DIGEST --now`); deferred retries are left to `kabar run` or `kabar send --resume`.
    `kabar run` does the same on the schedules in the config.
    """
    reports = _ingest_sources(app, (), parse_time(as_of))
    _print_reports(reports, as_json=False)
    feeds_report = _build_feeds(app, (), dry_run=False, force=False, ping=True)
    click.echo(feeds_report.describe())
    issues_ok = _publish_digests(app)
    if any(report.failures for report in reports) or not issues_ok:
        sys.exit(EXIT_PARTIAL)


def _publish_digests(app: App) -> bool:
    """Make and deliver each digest's current issue; False if any did not fully go out."""
    import asyncio

    from kabar.deliver.issue import plan_issue
    from kabar.deliver.send import utcnow
    from kabar.deliver.session import Session, import_lists
    from kabar.ledger import Ledger

    if not app.config.digests:
        return True
    import_lists(app.config, app.store)
    ledger = Ledger(app.store.engine)
    plans = [
        plan_issue(app.config, ledger, digest, now=utcnow(), at_once=True)
        for digest in app.config.digests
    ]

    async def deliver() -> list[Any]:
        async with Session(app.config, app.store) as runner:
            for plan in plans:
                runner.create(plan)
            return [await runner.run(plan.key, wait=False) for plan in plans]

    issues = asyncio.run(deliver())
    _print_issue_lines(app, [issue.key for issue in issues if issue is not None])
    return all(issue is not None and issue.state in ("sent", "skipped") for issue in issues)


# --- subscribers, sending, status, the scheduler ------------------------------------------


def _list_id(app: App, list_id: str | None) -> str:
    known = [mailing_list.id for mailing_list in app.config.lists]
    if list_id is None and len(known) == 1:
        return known[0]
    if list_id is None or list_id not in known:
        what = "--list is required" if list_id is None else f"unknown list id {list_id!r}"
        fail(f"{what} (configured lists: {', '.join(known) or 'none'})")
    return list_id


_list_option = click.option(
    "--list", "list_id", metavar="ID", help="Mailing list id [default: the only list]."
)


@cli.group()
def subscribers() -> None:
    """Subscribers of the mailing lists, kept in the database.

    Statuses: pending (double opt-in, unconfirmed), active, unsubscribed, bounced,
    complained. Only active subscribers receive issues.
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_list_option
@click.option(
    "--status",
    type=click.Choice(["active", "pending"]),
    default="active",
    show_default=True,
    help="Status of the imported subscribers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def subscribers_import(
    app: App, file: Path, list_id: str | None, status: str, as_json: bool
) -> None:
    """Import subscribers from a CSV FILE.

    The first row may name the columns (`email`, and optionally `name` and `locale`);
    without it the columns are email, name, locale. Addresses are checked with
    email-validator (syntax only, no DNS). Each rejected row is reported as
    FILE:LINE: reason (an invalid address, or a duplicate in the file or on the list) and
    the others are imported; subscribers already on the list are never changed. Exit
    status 1 if any row was rejected.
    """
    from kabar.subscribers import Status, Subscribers

    target = _list_id(app, list_id)
    report = Subscribers(app.store.engine).import_csv(file, target, status=cast(Status, status))
    if as_json:
        click.echo(json.dumps({
            "file": str(file), "list": target, "imported": report.imported,
            "rejected": report.rejected,
        }, ensure_ascii=False))  # fmt: skip
    else:
        for line in report.rejected:
            click.echo(line, err=True)
        click.echo(report.describe())
    if report.rejected:
        sys.exit(EXIT_PARTIAL)


@subscribers.command("list")
@_list_option
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed", "bounced",
              "complained"]), help="Only subscribers with this status.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def subscribers_list(app: App, list_id: str | None, status: str | None, as_json: bool) -> None:
    """List subscribers (of every list unless --list is given), by address."""
    from kabar.subscribers import Status, Subscribers

    if list_id is not None:
        _list_id(app, list_id)
    found = Subscribers(app.store.engine).iter(list_id, status=cast("Status | None", status))
    if as_json:
        for subscriber in found:
            click.echo(json.dumps(subscriber.to_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("list", "email", "name", "locale", "status", box=None, pad_edge=False)
    for subscriber in found:
        table.add_row(
            subscriber.list_id, subscriber.email, subscriber.name, subscriber.locale,
            subscriber.status,
        )  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


@subscribers.command("add")
@click.argument("email")
@_list_option
@click.option("--name", default="", help="The subscriber's name, as greetings show it.")
@click.option("--locale", default="", help="id or en [default: the list's or the site's].")
@click.option(
    "--status", type=click.Choice(["active", "pending"]), default="active", show_default=True
)
@pass_app
def subscribers_add(
    app: App, email: str, list_id: str | None, name: str, locale: str, status: str
) -> None:
    """Add EMAIL to a list (no confirmation mail: the admin vouches for it)."""
    from kabar.subscribers import InvalidAddress, Status, Subscribers

    target = _list_id(app, list_id)
    try:
        subscriber, made = Subscribers(app.store.engine).add(
            target, email, name=name, locale=locale, status=cast(Status, status)
        )
    except InvalidAddress as exc:
        raise click.BadParameter(f"{email!r}: {exc}", param_hint="EMAIL") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--locale") from None
    if made:
        click.echo(f"added {subscriber.email} to {target} ({subscriber.status})")
    else:
        click.echo(f"{subscriber.email} is already on {target} ({subscriber.status})")


@subscribers.command("remove")
@click.argument("email")
@_list_option
@click.option(
    "--purge", is_flag=True, help="Erase the subscriber and their delivery history instead."
)
@pass_app
def subscribers_remove(app: App, email: str, list_id: str | None, purge: bool) -> None:
    """Unsubscribe EMAIL from a list (kept, so a re-import cannot add it back)."""
    from kabar.subscribers import Subscribers

    target = _list_id(app, list_id)
    store = Subscribers(app.store.engine)
    subscriber = store.find(target, email.strip())
    if subscriber is None:
        fail(f"{email} is not on list {target}", EXIT_PARTIAL)
    if purge:
        store.purge(subscriber.id)
        click.echo(f"erased {subscriber.email} from {target}")
    else:
        store.set_status(subscriber.id, "unsubscribed")
        click.echo(f"unsubscribed {subscriber.email} from {target}")


@cli.command()
@click.argument("digest_id", required=False, metavar="[DIGEST]")
@click.option(
    "--now",
    "at_once",
    is_flag=True,
    help="Make the issue of the current period even if its scheduled time has not come.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be sent; write and send nothing.")
@click.option(
    "--resume",
    "resume_key",
    metavar="ISSUE_KEY",
    help="Continue this issue: after a crash or a stop, a pause, or a missed run.",
)
@click.option(
    "--resend-failed",
    is_flag=True,
    help="Queue the issue's failed deliveries again (same Message-IDs; bounces stay out).",
)
@click.option(
    "--no-wait", is_flag=True, help="Leave deferred retries to `kabar run` instead of waiting."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@pass_app
def send(
    app: App,
    digest_id: str | None,
    at_once: bool,
    dry_run: bool,
    resume_key: str | None,
    resend_failed: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Make the due issue of DIGEST and deliver it, or resume one.

    The issue key is DIGEST:LIST:PERIOD (the local date for daily digests). Running the
    command again in the same period resumes that issue; it never makes a second one.
    Exit status 0 when the issue is sent (or skipped: nothing new), 1 when deliveries
    failed, are deferred, or the issue paused on a sender problem.
    """
    import asyncio

    from kabar.deliver.issue import NothingDue, plan_issue
    from kabar.deliver.issue import dry_run as preview
    from kabar.deliver.send import utcnow
    from kabar.deliver.session import Session, import_lists
    from kabar.ledger import Ledger

    ledger = Ledger(app.store.engine)
    plan = None
    if resume_key is not None:
        if ledger.issue(resume_key) is None:
            fail(f"no issue {resume_key!r} (kabar status lists them)")
        key = resume_key
    else:
        if digest_id is None:
            raise click.UsageError("give a DIGEST, or --resume ISSUE_KEY")
        known = [digest.id for digest in app.config.digests]
        if digest_id not in known:
            fail(f"unknown digest id {digest_id!r} (configured: {', '.join(known) or 'none'})")
        try:
            plan = plan_issue(
                app.config, ledger, app.config.digest(digest_id), now=utcnow(), at_once=at_once
            )
        except NothingDue as exc:
            click.echo(str(exc))
            return
        key = plan.key
    if dry_run:
        if plan is None:
            issue = ledger.issue(key)
            assert issue is not None
            click.echo(json.dumps(_issue_row(issue, ledger.counts([key])[key]), ensure_ascii=False))
        else:
            click.echo(json.dumps(preview(app.config, app.store, plan), ensure_ascii=False))
        return
    import_lists(app.config, app.store)

    async def deliver() -> Any:
        async with Session(app.config, app.store) as runner:
            if plan is not None:
                runner.create(plan)
            runner.reopen(key, resend_failed=resend_failed, revive_missed=plan is None or at_once)
            return await runner.run(key, wait=not no_wait)

    issue = asyncio.run(deliver())
    _print_issue_lines(app, [key], as_json=as_json)
    if issue is None or issue.state not in ("sent", "skipped"):
        sys.exit(EXIT_PARTIAL)


def _issue_row(issue: Any, counts: Any) -> dict[str, Any]:
    return {
        "issue": issue.key, "state": issue.state, "issue_time": issue.issue_time.isoformat(),
        **counts.to_dict(), "detail": issue.detail,
    }  # fmt: skip


def _print_issue_lines(app: App, keys: list[str], *, as_json: bool = False) -> None:
    from kabar.ledger import Ledger

    ledger = Ledger(app.store.engine)
    counts = ledger.counts(keys)
    for key in keys:
        issue = ledger.issue(key)
        assert issue is not None
        row = _issue_row(issue, counts[key])
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        numbers = ", ".join(f"{n} {name}" for name, n in counts[key].to_dict().items() if n)
        detail = f" ({issue.detail})" if issue.detail else ""
        click.echo(f"{key}: {issue.state}{detail}: {numbers or 'no subscribers'}")


@cli.command()
@click.option("--digest", "digest_id", help="Only issues of this digest.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per issue.")
@pass_app
def status(app: App, digest_id: str | None, limit: int, as_json: bool) -> None:
    """Issues, newest first, with their delivery counts.

    audience = sent + deferred (waiting to retry) + failed + bounced + skipped (left
    before their turn) + pending (not yet sent, or being sent).
    """
    from kabar.ledger import Ledger

    ledger = Ledger(app.store.engine)
    issues = ledger.issues(digest_id=digest_id, limit=limit)
    counts = ledger.counts([issue.key for issue in issues])
    rows = [_issue_row(issue, counts[issue.key]) for issue in issues]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("no issues yet")
        return
    from rich.console import Console
    from rich.table import Table

    columns = ("audience", "sent", "deferred", "failed", "bounced", "skipped", "pending")
    table = Table("issue", "state", *columns, "detail", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["issue"], row["state"], *(str(row[c]) for c in columns), row["detail"])
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


@cli.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@pass_app
def run(app: App, once: bool) -> None:
    """The scheduler daemon: ingest, feed and digest jobs on the schedules in the config.

    Each job works out from the database what is due (catch_up and max_lateness apply
    after downtime), so restarts neither lose nor repeat runs. Unfinished issues are
    resumed. One scheduler runs per database: a second `kabar run` waits for the first
    to stop; `kabar run --once` exits with status 1 instead. SIGTERM drains the sends in
    flight and exits.
    """
    import asyncio

    from kabar.deliver.session import run_scheduler

    if not asyncio.run(run_scheduler(app.config, app.store, once=once)):
        sys.exit(EXIT_PARTIAL)


@cli.command()
@pass_app
def worker(app: App) -> None:
    """Send chunks of issues queued on the broker (engine.mode: dramatiq).

    Start one or more on each sending machine, next to one `kabar run` (the scheduler,
    which queues the chunks) against the same PostgreSQL and broker. A worker sends one
    chunk at a time over delivery.smtp.connections connections; the SMTP rate limit is
    shared by all workers through Redis. SIGTERM or SIGINT: the sends in flight finish
    and the rest of the chunk goes back to the ledger. A worker that dies outright holds
    its deliveries until their lease runs out; another worker then sends them, under the
    same Message-IDs.
    """
    if app.config.engine.mode != "dramatiq":
        fail("kabar worker needs engine.mode: dramatiq; in embedded mode kabar run sends itself")
    from kabar.distributed import run_worker

    run_worker(app.config, app.store)


@cli.group()
def build() -> None:
    """Render outputs from the store without ingesting first."""


@build.command("feeds")
@click.argument("feed_ids", nargs=-1, metavar="[FEED_ID]...")
@click.option("--dry-run", is_flag=True, help="Render and compare, but write nothing.")
@click.option("--force", is_flag=True, help="Render every feed, even those with nothing new.")
@click.option("--no-ping", is_flag=True, help="Don't notify the WebSub hub of changed feeds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def build_feeds(
    app: App,
    feed_ids: tuple[str, ...],
    dry_run: bool,
    force: bool,
    no_ping: bool,
    as_json: bool,
) -> None:
    """Render feeds (all, or FEED_ID...) in their formats and write those that changed.

    Files go to storage.feeds (a folder or an fsspec URL such as s3://bucket/feeds); a
    file whose bytes are unchanged is not rewritten. History beyond a feed's limit goes
    to RFC 5005 archive pages. A feed whose articles and settings are unchanged since the
    last build is skipped (--force renders it anyway). After a feed changes, the WebSub
    hub (web.websub_hub) is notified.
    """
    report = _build_feeds(app, feed_ids, dry_run=dry_run, force=force, ping=not no_ping)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for warning in report.warnings:
            click.echo(warning, err=True)
        click.echo(report.describe())


def _build_feeds(
    app: App, feed_ids: tuple[str, ...], *, dry_run: bool, force: bool, ping: bool
) -> Any:
    from kabar.deliver.storage import FeedStorage
    from kabar.feeds import build_feeds as build_all

    known = [feed.id for feed in app.config.feeds]
    unknown = [feed_id for feed_id in feed_ids if feed_id not in known]
    if unknown:
        fail(f"unknown feed id(s): {', '.join(unknown)} (configured: {', '.join(known) or 'none'})")
    location = app.config.storage.feeds
    try:
        storage = FeedStorage.from_config(app.config)
    except (ImportError, ValueError) as exc:
        fail(f"storage.feeds {location!r}: {exc}")
    with file_progress("feeds") as progress, _storage_errors(location):
        return build_all(
            app.config,
            app.store,
            storage,
            feed_ids,
            dry_run=dry_run,
            force=force,
            ping=ping,
            progress=progress,
        )


@contextmanager
def _storage_errors(location: str) -> Iterator[None]:
    """A storage that can't be written stops the command with what went wrong."""
    try:
        yield
    except OSError as exc:
        fail(f"feed storage {location}: {exc}", EXIT_PARTIAL)


@cli.command()
@click.option("--host", help="Interface to listen on [default: web.host].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: web.port].")
@pass_app
def serve(app: App, host: str | None, port: int | None) -> None:
    """Serve feed storage over HTTP: feeds under /feeds/ with ETag, Last-Modified, 304s
    and gzip, and an index page with autodiscovery links."""
    import uvicorn

    from kabar.web import create_app

    config = app.config
    uvicorn.run(
        create_app(config),
        host=host or config.web.host,
        port=port or config.web.port,
        log_level="info",
        proxy_headers=True,
    )


@cli.command()
@click.argument("digest_id", metavar="DIGEST")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for issue.html, issue.txt and issue.eml [default: var/preview/DIGEST].",
)
@click.option("--as-of", help="Prepare the issue due at this ISO 8601 time [default: now].")
@click.option("--since", help="For a since_last window: when the last issue was sent.")
@click.option("--subscriber", "email", help="Address the preview to this email address.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@pass_app
def preview(
    app: App,
    digest_id: str,
    out: Path | None,
    as_of: str | None,
    since: str | None,
    email: str | None,
    as_json: bool,
) -> None:
    """Render the next issue of DIGEST to files, without sending or recording anything.

    issue.html and issue.txt are what the subscriber sees; issue.eml is the complete
    message (DKIM-signed when delivery.dkim is configured and its key is set), with
    sample unsubscribe and preferences URLs.
    """
    from kabar.digest import write_preview
    from kabar.mail.dkim import DkimKeyError
    from kabar.mail.message import BadRecipientError
    from kabar.render.email import RenderError

    known = [digest.id for digest in app.config.digests]
    if digest_id not in known:
        fail(f"unknown digest {digest_id!r} (configured: {', '.join(known) or 'none'})")
    try:
        written = write_preview(
            app.config,
            app.store,
            app.config.digest(digest_id),
            folder=out or app.config.resolve(f"var/preview/{digest_id}"),
            issue_time=parse_time(as_of) or datetime.now(UTC),
            since=parse_time(since),
            email=email,
        )
    except (BadRecipientError, DkimKeyError, RenderError) as exc:
        fail(str(exc))
    if written is None:
        click.echo(f"{digest_id}: no new articles in the window; no issue would be sent")
        return
    issue, files, note = written
    paths = [str(path) for path in files]
    html_bytes = files[0].stat().st_size
    if as_json:
        click.echo(json.dumps({
            "digest": digest_id, "issue_key": issue.issue_key, "subject": issue.subject,
            "articles": len(issue.article_ids), "html_bytes": html_bytes,
            "signed": issue.signer is not None, "files": paths,
        }, ensure_ascii=False))  # fmt: skip
        return
    click.echo(
        f"{digest_id}: {len(issue.article_ids)} articles, HTML {html_bytes / 1000:.1f} KB, "
        f"subject {issue.subject!r}"
    )
    if note:
        click.echo(note)
    if issue.signer is not None:
        signer = issue.signer
        click.echo(
            f"DKIM-signed as {signer.selector}._domainkey.{signer.domain}, whose TXT record "
            f"must read: {signer.dns_record()}"
        )
    for path in paths:
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("article_ids", nargs=-1, metavar="[ARTICLE_ID]...")
@click.option("--all", "every", is_flag=True, help="Every stored article, newest first.")
@click.option(
    "--before",
    help="Only candidates published before this ISO 8601 time, as for a digest issue "
    "(default: each article's own publication time).",
)
@click.option("--digest", "digest_id", help="Use this digest's related settings.")
@click.option(
    "--json", "as_json", is_flag=True,
    help='One object per line: {"id": …, "related": [{"id": …, "score": …}, …]}.',
)  # fmt: skip
@pass_app
def related(
    app: App,
    article_ids: tuple[str, ...],
    every: bool,
    before: str | None,
    digest_id: str | None,
    as_json: bool,
) -> None:
    """Show the related-news block of articles, with scores and reasons.

    Each item shows its score and why it was picked: shared tags (tag:…), the same
    section (section:…) and the terms that matched most (term:…); publisher-chosen
    items come first. Use it to tune `related:` (min_score, window, half_life).
    """
    from kabar.related import RelatedEngine

    if bool(article_ids) == every:
        raise click.UsageError("give ARTICLE_IDs or --all (not both)")
    settings = app.config.related
    if digest_id is not None:
        known = {d.id: d for d in app.config.digests}
        if digest_id not in known:
            fail(f"unknown digest id {digest_id!r} (configured: {', '.join(known) or 'none'})")
        settings = known[digest_id].related
    found = [app.store.get(i) for i in article_ids]
    missing = [i for i, article in zip(article_ids, found, strict=True) if article is None]
    if missing:
        fail(f"no stored article with id(s): {', '.join(missing)}")
    engine = RelatedEngine.open(app.config, app.store)
    moment = parse_time(before)
    for article in app.store.articles() if every else found:
        items = engine.related(article, before=moment, settings=settings)
        if as_json:
            click.echo(json.dumps({"id": article.id, "related": [
                {"id": i.article_id, "score": i.score, "title": i.title, "url": i.url,
                 "reasons": list(i.reasons), "chosen_by_publisher": i.chosen_by_publisher}
                for i in items
            ]}, ensure_ascii=False))  # fmt: skip
            continue
        click.echo(f"{article.id}  {article.title}")
        if not items:
            click.echo("    (no block: fewer good items than min_items)")
        for item in items:
            click.echo(f"    {item.score:.3f}  {item.article_id or '-':16s}  {item.title}")
            click.echo(f"           {', '.join(item.reasons)}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, force: bool) -> None:
    """Scaffold a new kabar project in DIRECTORY: config, templates and a sample page."""
    from kabar.resources import bundled

    plan = [
        (bundled(f"config/{name}"), directory / "config" / name)
        for name in ("kabar.yaml", "pembaca.csv")
    ]
    for folder in ("templates", "seeds"):
        files = sorted(f for f in bundled(folder).rglob("*") if f.is_file())
        plan += [(f, directory / folder / f.relative_to(bundled(folder))) for f in files]
    clashes = [str(target) for _, target in plan if target.exists()]
    if clashes and not force:
        fail(f"not overwriting existing files (use --force): {', '.join(clashes)}")
    for origin, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
        click.echo(f"wrote {target}")
    click.echo(f"next: cd {directory} && kabar check && kabar publish")


def main() -> None:
    try:
        cli(prog_name="kabar")
    except MissingSecretError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
