"""Issues to subscribers: send, status, and the run and worker daemons."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from kabar.cli.app import (
    EXIT_PARTIAL,
    LIMIT,
    App,
    echo_json,
    echo_table,
    fail,
    known_digest,
    pass_app,
)


@click.command()
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

    The issue key is DIGEST:LIST:PERIOD (the local date for daily digests); --now before
    the period's scheduled run makes DIGEST:LIST:PERIOD:manual instead, so the scheduled
    issue still goes out, with only the articles this one did not carry. Running the
    command again in the same period resumes that issue; it never makes a second one.
    Exit status 0 when the issue is sent (or skipped: nothing new), 1 when deliveries
    failed, are deferred, or the issue paused on a sender problem.
    """
    from kabar.runtime import SendRequest, UnknownIssue, send_issue

    if resume_key is None:
        if digest_id is None:
            raise click.UsageError("give a DIGEST, or --resume ISSUE_KEY")
        known_digest(app, digest_id)
    request = SendRequest(
        digest_id=digest_id, resume_key=resume_key, at_once=at_once, dry_run=dry_run,
        resend_failed=resend_failed, wait=not no_wait,
    )  # fmt: skip
    try:
        result = send_issue(app.config, app.store, request)
    except UnknownIssue as exc:
        fail(f"--resume: {exc}")
    if result.nothing_due:
        if as_json:  # a script reading --json output must get JSON whatever happened
            echo_json({"digest": digest_id, "issue": None, "nothing_due": result.nothing_due})
        else:
            click.echo(result.nothing_due)
    elif result.existing is not None:
        echo_json(_issue_row(result.existing, result.existing_counts))
    elif result.preview is not None:
        echo_json(result.preview)
    else:
        _print_issue_lines(app, [result.key], as_json=as_json)
        if not result.done:
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
            echo_json(row)
            continue
        numbers = ", ".join(f"{n} {name}" for name, n in counts[key].to_dict().items() if n)
        detail = f" ({issue.detail})" if issue.detail else ""
        click.echo(f"{key}: {issue.state}{detail}: {numbers or 'no subscribers'}")


def publish_digests(app: App, *, clock: Callable[[], datetime] | None = None) -> bool:
    """`kabar publish`: make and deliver each digest's current issue; False if any did not
    fully go out."""
    import asyncio

    from kabar.deliver.issue import plan_issue
    from kabar.deliver.send import utcnow
    from kabar.runtime import Session, import_lists

    clock = clock or utcnow
    from kabar.ledger import Ledger

    if not app.config.digests:
        return True
    import_lists(app.config, app.store)
    ledger = Ledger(app.store.engine)
    plans = [
        plan_issue(app.config, ledger, digest, now=clock(), at_once=True)
        for digest in app.config.digests
    ]

    async def deliver() -> list[Any]:
        async with Session(app.config, app.store, clock=clock, prints_outcome=True) as runner:
            for plan in plans:
                runner.create(plan)
            return [await runner.run(plan.key, wait=False) for plan in plans]

    issues = asyncio.run(deliver())
    _print_issue_lines(app, [issue.key for issue in issues if issue is not None])
    return all(issue is not None and issue.state in ("sent", "skipped") for issue in issues)


@click.command()
@click.option("--digest", "digest_id", help="Only issues of this digest.")
@click.option(
    "--limit", type=LIMIT, default=20, show_default=True,
    help="Show at most this many issues, the newest.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per issue.")
@pass_app
def status(app: App, digest_id: str | None, limit: int, as_json: bool) -> None:
    """Issues, newest first, with their delivery counts.

    audience = sent + deferred (waiting to retry) + failed + bounced + complained +
    skipped (left before their turn) + pending (not yet sent, or being sent). bounced
    counts refusals during sending and hard-bounce DSNs read later (kabar bounces);
    complained counts sent messages reported as spam.
    """
    from kabar.ledger import Ledger

    if digest_id is not None:
        known_digest(app, digest_id, "--digest")
    ledger = Ledger(app.store.engine)
    issues = ledger.issues(digest_id=digest_id, limit=limit)
    counts = ledger.counts([issue.key for issue in issues])
    rows = [_issue_row(issue, counts[issue.key]) for issue in issues]
    for row in rows:  # how many renderings the issue had, and how many subscribers each
        row["variants"] = {k: n for k, n in ledger.variants(row["issue"]).items() if k}
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        click.echo("no issues yet")
        return
    columns = (
        "audience", "sent", "deferred", "failed", "bounced", "complained", "skipped", "pending",
    )  # fmt: skip
    echo_table(
        ("issue", "state", *columns, "variants", "detail"),
        (
            (r["issue"], r["state"], *(str(r[c]) for c in columns), _variants(r["variants"]),
             r["detail"])
            for r in rows
        ),
    )  # fmt: skip


def _variants(variants: dict[str, int]) -> str:
    """How `status` shows the renderings: "2: id/all 40, en/all 2"."""
    if not variants:
        return "-"
    return f"{len(variants)}: " + ", ".join(f"{k} {n}" for k, n in sorted(variants.items()))


_METRICS_PORT = click.option(
    "--metrics-port", type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port [default: metrics.port; none if unset].",
)  # fmt: skip


def _serve_metrics(app: App, port: int | None) -> None:
    from kabar.observe.metrics import serve_metrics

    chosen = port or app.config.metrics.port
    if chosen is None:
        return
    try:
        serve_metrics(app.config.metrics.host, chosen)
    except OSError as exc:
        fail(f"--metrics-port: cannot listen on {app.config.metrics.host}:{chosen}: "
             f"{exc.strerror or exc}")  # fmt: skip


@click.command()
@click.option("--once", is_flag=True, help="Do what is due now, then exit.")
@_METRICS_PORT
@pass_app
def run(app: App, once: bool, metrics_port: int | None) -> None:
    """The scheduler daemon: ingest, feed and digest jobs on the schedules in the config.

    Each job works out from the database what is due (catch_up and max_lateness apply
    after downtime), so restarts neither lose nor repeat runs. Unfinished issues are
    resumed. One scheduler runs per database: a second `kabar run` waits for the first
    to stop; `kabar run --once` exits with status 1 instead. SIGTERM drains the sends in
    flight and exits. SIGHUP (or saving the config file) reloads the config: checked
    first, kept as it was if bad, with each job added, removed or rescheduled logged.
    """
    import asyncio

    from kabar.runtime import run_scheduler

    if not once:
        _serve_metrics(app, metrics_port)

    if not asyncio.run(run_scheduler(app.config, app.store, once=once)):
        sys.exit(EXIT_PARTIAL)


@click.command()
@_METRICS_PORT
@pass_app
def worker(app: App, metrics_port: int | None) -> None:
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

    _serve_metrics(app, metrics_port)
    run_worker(app.config, app.store)
