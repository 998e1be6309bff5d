"""kabar jobs and kabar webhooks: what the daemon will do next, and how its webhooks go."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from kabar.cli.app import ISO_TIME, App, echo_json, echo_table, fail, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@click.option("--as-of", type=ISO_TIME, help="List the runs after this time [default: now].")
@pass_app
def jobs(app: App, as_json: bool, as_of: datetime | None) -> None:
    """Every job of `kabar run` (ingest, feeds, digests): its schedule, its next three
    runs in its time zone and in UTC, and the last run's outcome."""
    from kabar.schedule import describe, jobs_from_config, last_runs, next_runs

    moment = as_of or datetime.now(UTC)
    found = jobs_from_config(app.config)
    runs = last_runs(app.store.engine)
    rows: list[dict[str, Any]] = []
    for job in found:
        upcoming = next_runs(job, moment)
        last = runs.get(job.id)
        rows.append({
            "job": job.id, "schedule": describe(job), "timezone": job.zone.key,
            "next": [t.astimezone(job.zone).isoformat() for t in upcoming],
            "next_utc": [t.astimezone(UTC).isoformat() for t in upcoming],
            "last_run": last.started.isoformat() if last else None,
            "last_outcome": last.outcome if last else None,
            "last_detail": last.detail if last else "",
            "last_lag_seconds": last.lag_seconds if last else None,
        })  # fmt: skip
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        click.echo("no jobs: give sources `every:` and feeds or digests a `schedule:`")
        return
    echo_table(
        ("job", "schedule", "next runs (local)", "next runs (UTC)", "last run"),
        (
            (r["job"], r["schedule"], _times(r["next"]), _times(r["next_utc"]), _last(r))
            for r in rows
        ),
    )


def _times(values: list[str]) -> str:
    return ", ".join(value[:16].replace("T", " ") for value in values)


def _last(row: dict[str, Any]) -> str:
    if row["last_run"] is None:
        return "never"
    text = f"{str(row['last_run'])[:16].replace('T', ' ')} {row['last_outcome']}"
    return f"{text}: {row['last_detail']}" if row["last_detail"] else text


@click.command()
@click.option("--enable", "enable_id", metavar="ID", help="Re-enable a disabled endpoint.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endpoint.")
@pass_app
def webhooks(app: App, enable_id: str | None, as_json: bool) -> None:
    """Webhook endpoints: pending, held and sent events, and which are disabled.

    An endpoint that failed for webhooks.disable_after is disabled; its events are held.
    `--enable ID` sends them again (by `kabar run`).
    """
    from kabar.hooks.deliver import enable, endpoint_status

    if enable_id is not None:
        if enable_id not in {e.id for e in app.config.webhooks.endpoints}:
            fail(f"--enable: unknown webhook endpoint {enable_id!r}")
        released = enable(app.store.engine, enable_id)
        click.echo(f"webhook {enable_id} enabled; {released} held events go out again")
        return
    rows = endpoint_status(app.config, app.store.engine)
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        click.echo("no webhook endpoints configured")
        return
    echo_table(
        ("endpoint", "state", "pending", "held", "sent", "last error"),
        (
            (str(r["id"]), "disabled" if r["disabled"] else "failing" if r["failing_since"]
             else "ok", str(r["pending"]), str(r["held"]), str(r["sent"]), str(r["last_error"]))
            for r in rows
        ),
    )  # fmt: skip
