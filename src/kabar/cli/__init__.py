"""The `kabar` command.

Exit status: 0 when everything worked, 1 when some input or delivery failed (the rest
was still done), 2 for a bad config or bad usage.
"""

from __future__ import annotations

import sys

import click

from kabar import __version__
from kabar.cli import (
    bounces,
    content,
    delivery,
    jobs,
    preview,
    project,
    subscribers,
    tokens,
    web,
)
from kabar.cli.app import App, fail
from kabar.config import MissingSecretError


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


# Each area's module defines its commands without importing this one (no import cycle);
# they are all attached to the group here.
for command in (
    project.check,
    project.init,
    content.ingest,
    content.articles,
    content.publish,
    content.build,
    subscribers.subscribers,
    delivery.send,
    delivery.status,
    delivery.run,
    delivery.worker,
    preview.preview,
    preview.related,
    web.serve,
    tokens.tokens,
    jobs.jobs,
    jobs.webhooks,
    bounces.bounces,
    bounces.suppression,
):
    cli.add_command(command)


def main() -> None:
    from kabar.deliver.outbox import OutboxError

    try:
        status = cli.main(prog_name="kabar", standalone_mode=False)
    except click.UsageError as exc:
        # One line, like every other error of kabar's, with where to read more.
        where = exc.ctx.command_path if exc.ctx else "kabar"
        fail(f"{exc.format_message()} (see {where} --help)")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kabar: aborted", err=True)
        sys.exit(1)
    except (MissingSecretError, OutboxError) as exc:
        fail(str(exc))
    sys.exit(status if isinstance(status, int) else 0)
