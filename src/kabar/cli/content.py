"""Articles in and feeds out: ingest, articles, build feeds, and publish (all of it once)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from kabar.cli.app import (
    EXIT_PARTIAL,
    ISO_TIME,
    LIMIT,
    App,
    echo_json,
    echo_table,
    fail,
    file_progress,
    pass_app,
)
from kabar.cli.delivery import publish_digests
from kabar.config import FeedSource


@click.command()
@click.argument("source_ids", nargs=-1, metavar="[SOURCE_ID]...")
@click.option(
    "--path",
    type=click.Path(exists=True, path_type=Path),
    help="Ingest this file or folder (format detected per file) into one configured source: "
    "SOURCE_ID, or the source whose folder holds the path.",
)
@click.option(
    "--as-of",
    type=ISO_TIME,
    help="Resolve relative times ('4 jam lalu') against this ISO 8601 time "
    "instead of each file's modification time.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as one JSON object, on stdout."
)
@pass_app
def ingest(
    app: App, source_ids: tuple[str, ...], path: Path | None, as_of: datetime | None, as_json: bool
) -> None:
    """Read articles from sources into the store.

    With no SOURCE_ID, every configured source is ingested. A file that can't be read is
    reported as PATH: reason, a rejected record as PATH:LINE: reason (the first 20 of a
    file, then a count). The exit status is 1 if any file or record failed.
    """
    from kabar.ingest import ingest_path

    if path is not None:
        if len(source_ids) > 1:
            raise click.UsageError(
                "--path takes at most one SOURCE_ID (the source to file them under)"
            )
        source_id = _source_for_path(app, path, source_ids[0] if source_ids else None)
        with file_progress(f"ingest {path}") as progress:
            reports = [
                ingest_path(app.config, app.store, path, source_id, as_of=as_of, progress=progress)
            ]
    else:
        reports = _ingest_sources(app, source_ids, as_of)
    _print_reports(reports, as_json)
    if any(report.failed for report in reports):
        sys.exit(EXIT_PARTIAL)


def _source_for_path(app: App, path: Path, source_id: str | None) -> str:
    """The configured source that `path` goes into: the one named, or else the one whose
    folder holds it. Articles are never filed under a source the config doesn't know,
    where no feed or digest would find them."""
    known = {source.id: source for source in app.config.sources}
    listed = ", ".join(known) or "none"
    if source_id is not None:
        if source_id not in known:
            fail(f"SOURCE_ID: unknown source id {source_id!r} (configured: {listed})")
        return source_id
    target = path.resolve()
    for source in known.values():
        location = source.url if isinstance(source, FeedSource) else source.path
        if "://" in location:
            continue
        folder = app.config.resolve(location).resolve()
        if target == folder or folder in target.parents:
            return source.id
    fail(
        f"{path} is not in a configured source's folder: name the source to add it to, "
        f"as `kabar ingest --path {path} SOURCE_ID` (configured: {listed})"
    )


def _ingest_sources(app: App, source_ids: tuple[str, ...], as_of: datetime | None) -> list[Any]:
    from kabar.ingest import ingest_source

    known = {source.id: source for source in app.config.sources}
    unknown = [source_id for source_id in source_ids if source_id not in known]
    if unknown:
        fail(
            f"SOURCE_ID: unknown source id(s): {', '.join(unknown)} "
            f"(configured: {', '.join(known) or 'none'})"
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
    """Each source's summary, once: as JSON on stdout, or as text with the problems on
    stderr."""
    if as_json:
        echo_json({
            "sources": [report.to_dict() for report in reports],
            "articles": sum(report.articles for report in reports),
            "failed": sum(report.failed for report in reports),
            "warned": sum(report.warned for report in reports),
        })  # fmt: skip
        return
    for report in reports:
        for failure in report.failures:
            click.echo(failure, err=True)
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(report.describe())


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line, every stored field."
)
@click.option("--limit", type=LIMIT, default=None, help="At most N articles.")
@click.option("--source", "source_id", help="Only articles from this configured source.")
@pass_app
def articles(app: App, as_json: bool, limit: int | None, source_id: str | None) -> None:
    """List stored articles, newest first."""
    known = [source.id for source in app.config.sources]
    if source_id is not None and source_id not in known:
        fail(
            f"--source: unknown source id {source_id!r} (configured: {', '.join(known) or 'none'})"
        )
    found = app.store.articles(sources=[source_id] if source_id else None, limit=limit)
    if as_json:
        for article in found:
            echo_json(article.to_dict())
        return
    echo_table(
        ("published", "id", "source", "section", "title"),
        (
            (a.published.strftime("%Y-%m-%d %H:%M %z"), a.id, a.source, a.section, a.title)
            for a in found
        ),
    )


@click.command()
@click.option("--as-of", type=ISO_TIME, help="Resolve relative times against this ISO 8601 time.")
@pass_app
def publish(app: App, as_of: datetime | None) -> None:
    """The main job, once: ingest every source, then build feeds and digests.

    Each digest's issue for the current period is made and delivered (like `kabar send
    DIGEST --now`: before the period's scheduled run, as its own manual issue);
    deferred retries are left to `kabar run` or `kabar send --resume`.
    `kabar run` does the same on the schedules in the config.
    """
    reports = _ingest_sources(app, (), as_of)
    _print_reports(reports, as_json=False)
    feeds_report = _build_feeds(app, (), dry_run=False, force=False, ping=True)
    click.echo(feeds_report.describe())
    issues_ok = publish_digests(app)
    if any(report.failed for report in reports) or not issues_ok:
        sys.exit(EXIT_PARTIAL)


@click.group()
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
        echo_json(report.to_dict())
    else:  # the warnings are in the log already
        click.echo(report.describe())


def _build_feeds(
    app: App, feed_ids: tuple[str, ...], *, dry_run: bool, force: bool, ping: bool
) -> Any:
    from kabar.publish.feeds import build_feeds as build_all
    from kabar.publish.storage import FeedStorage

    known = [feed.id for feed in app.config.feeds]
    unknown = [feed_id for feed_id in feed_ids if feed_id not in known]
    if unknown:
        fail(
            f"FEED_ID: unknown feed id(s): {', '.join(unknown)} "
            f"(configured: {', '.join(known) or 'none'})"
        )
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
