"""Setting up a project: scaffold one, validate its config."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kabar import config as config_module
from kabar.cli.app import App, db_reason, fail, pass_app

if TYPE_CHECKING:
    from kabar.mail.dkim import DkimSigner


@click.command()
@pass_app
def check(app: App) -> None:
    """Validate the config file; print FILE:LINE:COL: path: message per problem.

    Exits 0 and prints a one-line summary when the file is valid, 2 otherwise. A source,
    feed or digest that no job of `kabar run` will ever run gets a warning line (on
    stderr), which does not change the exit status. With delivery.dkim configured, the
    key its variable names must be set and usable, and the DNS TXT record it needs is
    printed. The database must be reachable; check reads its schema's revision and
    changes nothing (a new SQLite file is not created, only its folder checked).
    """
    from kabar.schedule import idle_parts

    config = app.config
    signer = _dkim_signer(config)
    database = _database_state(config)
    for loc, message in idle_parts(config):
        click.echo(config_module.located(config, loc, f"warning: {message}"), err=True)
    click.echo(config_module.summary(config))
    click.echo(database)
    if signer is not None:
        click.echo(
            f"DKIM: publish a TXT record at {signer.selector}._domainkey.{signer.domain}: "
            f'"{signer.dns_record()}"'
        )


def _database_state(config: config_module.Config) -> str:
    """One line on the database; exit 2 when kabar could not open it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from kabar.store import create_db_engine, masked_url, pending_migrations

    try:
        url = config.database_url
    except config_module.MissingSecretError as exc:
        fail(f"storage.password_env: {exc}")
    where = masked_url(url)
    parsed = make_url(url)  # the config's validator has parsed it already
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return f"database in memory ({url}): everything is lost when a command ends"
        path = Path(parsed.database)
        if not path.exists():
            return _new_sqlite_file(path, where)
    try:
        engine = create_db_engine(url)
        try:
            pending = pending_migrations(engine)
        finally:
            engine.dispose()
    except (OSError, ImportError, SQLAlchemyError) as exc:
        fail(f"storage.database: cannot open {where}: {db_reason(exc)}")
    if pending:
        return f"database {where}: reachable; the next command applies {pending} migration(s)"
    return f"database {where}: reachable, schema up to date"


def _new_sqlite_file(path: Path, where: str) -> str:
    """Whether the first command could create the file: a file made and removed in the
    nearest folder that exists, the only trace `check` leaves for a moment."""
    folder = next(parent for parent in path.parents if parent.exists())
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        fail(f"storage.database: cannot create {path}: {folder}: {exc.strerror or exc}")
    return f"database {where}: created by the first command that needs it"


def _dkim_signer(config: config_module.Config) -> DkimSigner | None:
    """The configured signer; exit 2 on a key that would make every signed send fail,
    before anything is written."""
    from kabar.mail.dkim import DkimKeyError, DkimSigner

    try:
        return DkimSigner.from_config(config)
    except (config_module.MissingSecretError, DkimKeyError) as exc:
        fail(f"delivery.dkim: {exc}")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, force: bool) -> None:
    """Scaffold a new kabar project in DIRECTORY: config, templates and the demo's articles."""
    from kabar.resources import DEMO_SEEDS, bundled

    plan = [
        (bundled(f"config/{name}"), directory / "config" / name)
        for name in ("kabar.yaml", "pembaca.csv")
    ] + [(bundled("NOTICE"), directory / "NOTICE")]  # the demo articles' licence
    # The demo's own files by name: in a checkout, seeds/ may hold articles the admin
    # added, and a link there may lead anywhere.
    plan += [(bundled(f"seeds/{name}"), directory / "seeds" / name) for name in DEMO_SEEDS]
    templates = sorted(
        f for f in bundled("templates").rglob("*") if f.is_file() and not f.is_symlink()
    )
    plan += [(f, directory / "templates" / f.relative_to(bundled("templates"))) for f in templates]
    clashes = [str(target) for _, target in plan if target.exists()]
    if clashes and not force:
        fail(f"not overwriting existing files (use --force): {', '.join(clashes)}")
    for origin, target in plan:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)
        except OSError as exc:
            # A path under a file or in a read-only place is a usage error, not a crash.
            fail(f"DIRECTORY: cannot write {target}: {exc.strerror or exc}")
        click.echo(f"wrote {target}")
    click.echo(f"next: cd {directory} && kabar check && kabar publish")
