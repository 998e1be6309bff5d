"""What a new user and a script meet first: a usage error is one line and exit 2, never a
traceback, and --json output is JSON whatever happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kabar.cli import cli

from ..support.delivery_setup import SECRET, delivery_config, prepare_store
from ..support.project import WriteConfig


def test_init_under_a_file_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    result = CliRunner().invoke(cli, ["init", str(blocker / "site")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"cannot write {blocker / 'site'}" in result.output


def test_send_json_says_nothing_is_due_in_json(write_config: WriteConfig, project: Path) -> None:
    config = delivery_config(write_config)  # no schedule: nothing is due without --now
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(
            cli, ["-q", "-c", str(config.path), "send", "harian", "--json", *extra]
        )
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert answer["digest"] == "harian" and answer["issue"] is None
        assert "has no schedule; --now sends the current issue" in answer["nothing_due"]
    assert not (project / "outbox" / "new").exists()


def test_preview_out_under_a_file_is_an_error_in_json(
    write_config: WriteConfig, project: Path, tmp_path: Path
) -> None:
    config = delivery_config(write_config)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    for extra, parse in ((["--json"], json.loads), ([], str)):
        result = CliRunner().invoke(
            cli,
            ["-q", "-c", str(config.path), "preview", "harian", "--out", str(blocker / "p"),
             "--as-of", "2026-12-05T07:00+07:00", *extra],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        said = parse(result.stdout if extra else result.stderr)
        assert f"--out: cannot write {blocker / 'p'}" in (said["error"] if extra else said)


def test_a_database_kabar_cannot_open_is_one_line(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    path = write_config(storage={"database": f"sqlite:///{blocker}/kabar.db", "feeds": "public/"})
    result = CliRunner().invoke(cli, ["-c", str(path), "articles"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"kabar: storage.database: cannot open sqlite:///{blocker}")


def test_an_unreachable_postgresql_is_one_line_without_the_password(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_DB_PASSWORD", "hunter2-secret")
    path = write_config(storage={
        "database": "postgresql://kabar@127.0.0.1:1/kabar",  # port 1: nobody listens
        "password_env": "KABAR_DB_PASSWORD", "feeds": "public/",
    })  # fmt: skip
    result = CliRunner().invoke(cli, ["-c", str(path), "status"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert "kabar: storage.database: cannot open postgresql://kabar:***@127.0.0.1:1/kabar: " in (
        result.stderr
    )
    assert "hunter2" not in result.output


def test_an_outbox_under_a_file_is_one_line_and_no_issue(
    write_config: WriteConfig,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kabar.cli import main
    from kabar.ledger import Ledger
    from kabar.store import Store

    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    config = delivery_config(write_config, outbox=str(blocker / "outbox"))
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 2)
    monkeypatch.setattr("sys.argv", ["kabar", "-q", "-c", str(config.path), "send", "harian",
                                     "--now"])  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert (
        said
        == f"kabar: delivery.outbox: cannot make {blocker / 'outbox' / 'tmp'}: Not a directory\n"
    )
    with Store.open(config.database_url) as store:
        assert Ledger(store.engine).issues() == []  # nothing half-made to resume
