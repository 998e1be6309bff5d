"""Seeing what readers would get, without sending anything: preview and related."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from kabar.cli.app import App, echo_json, fail, parse_time, pass_app


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
            since=parse_time(since, "--since"),
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
        echo_json({
            "digest": digest_id, "issue_key": issue.issue_key, "subject": issue.subject,
            "articles": len(issue.article_ids), "html_bytes": html_bytes,
            "signed": issue.signer is not None, "files": paths,
        })  # fmt: skip
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


@click.command()
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
    moment = parse_time(before, "--before")
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
