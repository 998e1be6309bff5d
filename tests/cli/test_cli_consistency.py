"""The CLI behaves the same everywhere: every option has help, unknown ids and unreadable
times exit 2 naming their option, a busy port is one line, a summary is said once."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kabar.cli import cli

from ..support.delivery_setup import DIGEST, SECRET
from ..support.project import SEED_AS_OF, WriteConfig


def walk(command: click.Command, path: str = "kabar") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += walk(sub, f"{path} {name}")
    return found


def test_every_option_of_every_command_has_help_text() -> None:
    missing = [
        f"{path} {param.opts[0]}"
        for path, command in walk(cli)
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert missing == []
    assert len(walk(cli)) > 15  # the walk reached the subcommands


@pytest.fixture
def config_path(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    return write_config(
        feeds=[{"id": "semua", "title": "Semua"}],
        digests=[DIGEST],
        web={"base_url": "https://kabar.example.id"},
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["status", "--digest", "nope"], "--digest"),
        (["send", "nope", "--now"], "DIGEST"),
        (["preview", "nope"], "DIGEST"),
        (["related", "--all", "--digest", "nope"], "--digest"),
    ],
)
def test_an_unknown_digest_id_exits_2_naming_the_option(
    config_path: Path, args: list[str], option: str
) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config_path), *args])
    assert result.exit_code == 2, result.output
    assert f"{option}: unknown digest id 'nope' (configured: harian)" in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["publish", "--as-of", "garbage"], "--as-of"),
        (["preview", "harian", "--as-of", "garbage"], "--as-of"),
        (["preview", "harian", "--since", "garbage"], "--since"),
        (["related", "--all", "--before", "garbage"], "--before"),
    ],
)
def test_an_unreadable_time_exits_2_naming_the_option(
    config_path: Path, args: list[str], option: str
) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config_path), *args])
    assert result.exit_code == 2, result.output
    # click says "Error: --x: …"; preview reads its times itself (so --json can answer in
    # JSON) and says "kabar: --x: …". Either way the line starts with the option.
    assert re.search(
        rf"^(Error|kabar): {option}: cannot read 'garbage' as an ISO 8601 time", result.stderr, re.M
    )


@pytest.mark.parametrize(
    "args",
    [
        ["preview", "harian", "--as-of", "0001-01-01T00:00"],
        ["preview", "harian", "--as-of", "9999-12-31T23:59-05:00"],
        ["related", "--all", "--before", "0001-01-01T00:00"],
        ["ingest", "--as-of", "9999-12-31T23:59"],
    ],
)
def test_a_time_out_of_range_exits_2_in_one_line(config_path: Path, args: list[str]) -> None:
    """Not an OverflowError when a window is taken from it, nor an article of year 9999."""
    result = CliRunner().invoke(cli, ["-c", str(config_path), *args])
    assert result.exit_code == 2, result.output
    assert "is out of range: give a time from 1900 to 2999" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args", [["articles"], ["status"], ["bounces", "list"]], ids=["articles", "status", "bounces"]
)
def test_a_limit_past_a_database_integer_is_a_usage_error(
    config_path: Path, args: list[str]
) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config_path), *args, "--limit", "9" * 23])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'--limit'" in result.stderr


def test_serve_on_a_busy_port_prints_one_line_and_exits_2(config_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["-c", str(config_path), "serve", "--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"kabar: --port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_serve_with_a_database_it_cannot_open_exits_2(write_config: WriteConfig) -> None:
    """Not a server whose every page is a 500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"postgresql+psycopg://kabar@127.0.0.1:{closed}/kabar"
    path = write_config(storage={"database": url, "feeds": "public/"})
    result = CliRunner().invoke(cli, ["-c", str(path), "serve", "--port", str(closed)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"kabar: storage.database: cannot open {url}")


def said(result: object, text: str) -> int:
    output = getattr(result, "stdout", "") + getattr(result, "stderr", "")
    return sum(text in line for line in output.splitlines())


def test_each_summary_is_said_once(config_path: Path) -> None:
    runner = CliRunner()
    base = ["-c", str(config_path)]
    runner.invoke(cli, [*base, "subscribers", "add", "ani@example.com"])
    result = runner.invoke(cli, [*base, "publish", "--as-of", SEED_AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    assert said(result, "seeds: 1 file, 11 articles") == 1
    assert said(result, "feeds: 1 feeds") == 1
    assert said(result, ": sent: 1 audience, 1 sent") == 1
    assert said(result, "sent=1") == 0  # no progress line repeating the outcome

    result = runner.invoke(cli, [*base, "build", "feeds", "--force"])
    assert result.exit_code == 0, result.output
    assert said(result, "feeds: 1 feeds") == 1

    result = runner.invoke(cli, [*base, "send", "harian", "--now"])  # resumes: already sent
    assert said(result, ": sent: 1 audience, 1 sent") == 1


def test_the_real_entry_point_says_a_usage_error_in_one_line(config_path: Path) -> None:
    """As every other error: `kabar: …`, with where to read more, status 2."""
    for args, line in [
        (["ingest", "--as-of", "garbage"], "kabar: --as-of: cannot read 'garbage'"),
        (["articles", "--limit", "0"], "kabar: Invalid value for '--limit'"),
        (["nope"], "kabar: No such command 'nope'."),
    ]:
        run = subprocess.run(
            [sys.executable, "-m", "kabar", "-c", str(config_path), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        [said_line] = run.stderr.splitlines()
        assert said_line.startswith(line) and said_line.endswith("--help)"), said_line
    shown = subprocess.run(
        [sys.executable, "-m", "kabar", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: kabar")
