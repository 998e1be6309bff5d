from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kabar import __version__
from kabar.cli import cli

from ..support.project import ROOT, WriteConfig


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "kabar")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    summary = result.output.split("\n\n", 2)[1].strip()
    assert len(summary) > 15, f"{command} has no real help text"


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.output == f"kabar, version {__version__}\n"


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kabar", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"kabar, version {__version__}"


def test_articles_json_writes_every_stored_field(write_config: WriteConfig) -> None:
    path = str(write_config())
    runner = CliRunner()
    runner.invoke(cli, ["--config", path, "ingest", "--as-of", "2024-05-01T12:00+07:00"])
    result = runner.invoke(cli, ["--config", path, "articles", "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {
        "id", "guid", "source", "url", "title", "published", "updated", "summary", "body_text",
        "body_html", "authors", "credit", "section", "tags", "image_url", "image_alt",
        "language", "dateline", "cross_links", "related", "content_hash",
    }  # fmt: skip
    published = [row["published"] for row in rows]
    assert published == sorted(published, reverse=True)


def test_init_copies_the_demo_not_what_an_admin_added_to_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kabar import resources

    checkout = tmp_path / "checkout"
    for folder in ("config", "seeds", "templates"):
        shutil.copytree(ROOT / folder, checkout / folder)
    shutil.copy(ROOT / "NOTICE", checkout / "NOTICE")
    (checkout / "seeds" / "banjir-bekasi.txt").write_text("Banjir\n", encoding="utf-8")
    (checkout / "templates" / "hostname.txt.j2").symlink_to("/etc/hostname")
    monkeypatch.setattr(resources, "_PACKAGE_BUNDLE", tmp_path / "no-bundle")
    monkeypatch.setattr(resources, "_REPOSITORY", checkout)
    made = CliRunner().invoke(cli, ["init", str(tmp_path / "baru")])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (tmp_path / "baru" / "seeds").iterdir()) == sorted(
        resources.DEMO_SEEDS
    )
    assert not (tmp_path / "baru" / "templates" / "hostname.txt.j2").exists()
    assert (tmp_path / "baru" / "templates" / "digest.mjml.j2").exists()


def test_init_scaffolds_a_project_that_checks_and_ingests(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "berita"
    made = runner.invoke(cli, ["init", str(target)])
    assert made.exit_code == 0, made.output
    config_path = target / "config" / "kabar.yaml"
    assert config_path.exists() and any((target / "seeds").glob("*.txt"))
    assert "CC BY-SA 4.0" in (target / "NOTICE").read_text()  # the demo articles' licence
    checked = runner.invoke(cli, ["--config", str(config_path), "check"])
    assert checked.exit_code == 0, checked.output
    ingested = runner.invoke(cli, ["--config", str(config_path), "ingest"])
    assert ingested.exit_code == 0, ingested.output
    assert (target / "var" / "kabar.db").exists()
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code == 2 and "not overwriting" in again.stderr
