"""Usage errors a new user meets first: one line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kabar.cli import cli


def test_init_under_a_file_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    result = CliRunner().invoke(cli, ["init", str(blocker / "site")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"cannot write {blocker / 'site'}" in result.output
