"""Seeing what readers would get, without sending anything: preview and related."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click

from kabar.cli.app import EXIT_USAGE, ISO_TIME, App, echo_json, fail, known_digest, pass_app
from kabar.config import Digest


@click.command()
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
    message (DKIM-signed when delivery.dkim is configured and its key is set). With
    --subscriber naming one of the list's subscribers, it is their message: their
    language, name and links; otherwise a sample subscriber's. Older issue.* files in
    the folder are removed first. With --json, the outcome (an error too) is one JSON
    object on stdout.
    """
    from kabar.digest import write_preview
    from kabar.mail.dkim import DkimKeyError
    from kabar.mail.message import BadRecipientError
    from kabar.render.templates import RenderError

    def refuse(message: str) -> NoReturn:
        if as_json:
            echo_json({"digest": digest_id, "error": message})
            sys.exit(EXIT_USAGE)
        fail(message)

    known = [digest.id for digest in app.config.digests]
    if digest_id not in known:
        configured = ", ".join(known) or "none"
        refuse(f"DIGEST: unknown digest id {digest_id!r} (configured: {configured})")
    try:
        issue_time = _option_time("--as-of", as_of) or datetime.now(UTC)
        since_time = _option_time("--since", since)
        digest = app.config.digest(digest_id)
        written = write_preview(
            app.config,
            app.store,
            digest,
            folder=out or app.config.resolve(f"var/preview/{digest_id}"),
            issue_time=issue_time,
            since=since_time,
            email=email,
            exclude=_carried(app, digest, issue_time, since_time),
        )
    except click.BadParameter as exc:
        refuse(exc.message)
    except (BadRecipientError, DkimKeyError, RenderError) as exc:
        refuse(str(exc))
    except OSError as exc:  # --out under a file, or in a folder kabar may not write
        refuse(f"--out: cannot write {exc.filename or out}: {exc.strerror or exc}")
    if written is None:
        if as_json:
            echo_json({"digest": digest_id, "issue_key": None, "articles": 0, "files": []})
            return
        click.echo(f"{digest_id}: no new articles in the window; no issue would be sent")
        return
    issue = written.issue
    paths = [str(path) for path in written.files]
    html_bytes = written.files[0].stat().st_size
    if as_json:
        echo_json({
            "digest": digest_id, "issue_key": issue.issue_key, "subject": issue.subject,
            "articles": len(issue.article_ids), "html_bytes": html_bytes,
            "dropped": written.dropped, "signed": issue.signer is not None,
            "notes": written.notes, "files": paths,
        })  # fmt: skip
        return
    click.echo(
        f"{digest_id}: {len(issue.article_ids)} articles, HTML {html_bytes / 1000:.1f} KB, "
        f"subject {issue.subject!r}"
    )
    if written.dropped:
        click.echo(f"left out so the HTML stays under Gmail's clip limit ({len(written.dropped)}):")
        for title in written.dropped:
            click.echo(f"  - {title}")
    for note in written.notes:
        click.echo(note)
    if issue.signer is not None:
        signer = issue.signer
        click.echo(
            f"DKIM-signed as {signer.selector}._domainkey.{signer.domain}, whose TXT record "
            f"must read: {signer.dns_record()}"
        )
    for path in paths:
        click.echo(f"wrote {path}")


@click.command()
@click.argument("article_ids", nargs=-1, metavar="[ARTICLE_ID]...")
@click.option("--all", "every", is_flag=True, help="Every stored article, newest first.")
@click.option(
    "--before",
    type=ISO_TIME,
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
    before: datetime | None,
    digest_id: str | None,
    as_json: bool,
) -> None:
    """Show the related-news block of articles, with scores and reasons.

    Each item shows its score and why it was picked: shared tags (tag:…), the same
    section (section:…), the terms that matched most (term:…) and, for an article's
    best word matches, how close its topics are (topic:…) and how far its
    neighbourhood of the news agrees (neighbourhood:…), each 0 to 1; publisher-chosen
    items come first. Items filling a short block from its section show `closest`
    (words in common, under min_score, with their score) or `newest` (score 0). Use it
    to tune `related:` (min_score, window, half_life, fill).
    """
    from kabar.related import RelatedEngine

    if bool(article_ids) == every:
        raise click.UsageError("give ARTICLE_IDs or --all (not both)")
    settings = app.config.related
    if digest_id is not None:
        settings = app.config.digest(known_digest(app, digest_id, "--digest")).related
    found = [app.store.get(i) for i in article_ids]
    missing = [i for i, article in zip(article_ids, found, strict=True) if article is None]
    if missing:
        fail(f"ARTICLE_ID: no stored article with id(s): {', '.join(missing)}")
    engine = RelatedEngine.open(app.config, app.store)
    moment = before
    for article in app.store.articles() if every else found:
        items = engine.related(article, before=moment, settings=settings)
        if as_json:
            echo_json({"id": article.id, "related": [
                {"id": i.article_id, "score": i.score, "title": i.title, "url": i.url,
                 "reasons": list(i.reasons), "chosen_by_publisher": i.chosen_by_publisher}
                for i in items
            ]})  # fmt: skip
            continue
        click.echo(f"{article.id}  {article.title}")
        if not items:
            click.echo("    (no block: fewer good items than min_items)")
        for item in items:
            click.echo(f"    {item.score:.3f}  {item.article_id or '-':16s}  {item.title}")
            click.echo(f"           {', '.join(item.reasons)}")


def _carried(
    app: App, digest: Digest, issue_time: datetime, since: datetime | None
) -> frozenset[str]:
    """What earlier issues carried, left out of the preview as of the real issue."""
    from kabar.deliver.issue import carried_before
    from kabar.ledger import Ledger

    ledger = Ledger(app.store.engine)
    if digest.window == "since_last" and since is None:
        since = ledger.last_issue_time(digest.id, digest.list_id, issue_time)
    return carried_before(ledger, digest, "", issue_time, since)


def _option_time(option: str, value: str | None) -> datetime | None:
    """Parsed here rather than by click, so that --json can report a bad time as JSON."""
    if value is None:
        return None
    try:
        moment: datetime = ISO_TIME.convert(value, None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(f"{option}: {exc.message}") from None
    return moment
