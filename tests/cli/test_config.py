from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import ConfigError, MissingSecretError, read_secret

from ..support.project import ROOT, WriteConfig

BAD = """\
version: 1
site:
  title: Contoh
  url: "https://kabar.example.id"
  timezone: Asia/Jakrta
storage:
  database: "sqlite:///x.db"
  feds: public/
sources:
  - {id: seeds, kind: pages, path: seeds/}
  - {id: seeds, kind: pages, path: other/}
  - {id: wire, kind: feed}
feeds:
  - {id: semua, title: Semua, sources: [seeds, kawat], fromats: [rss], limit: banyak}
lists:
  - {id: pembaca, from: "Kabar <r@kabar.example.id>"}
digests:
  - id: harian
    list: pembacaa
    subject: Kabar pagi
    window: 3x
    schedule: {cron: "61 7 * * *", timezone: Asia/Jakarta}
  - id: mingguan
    list: pembaca
    subject: Kabar pekan ini
    schedule: {cron: "0 7 * * 1", timezone: Mars/Olympus}
  - id: harian
    list: pembaca
    subject: lagi
    schedule: {hour: 7}
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    return caught.value.problems


def test_the_demo_config_is_valid() -> None:
    loaded = config_module.load(ROOT / "config" / "kabar.yaml")
    assert loaded.delivery.transport == "outbox"
    assert loaded.root_dir == ROOT
    assert loaded.database_url == f"sqlite:///{ROOT / 'var' / 'kabar.db'}"
    assert [digest.list_id for digest in loaded.digests] == ["pembaca"]


def test_every_error_is_reported_with_file_line_column_and_path(write_config: WriteConfig) -> None:
    path = write_config(BAD)
    assert problems_of(path) == [
        f"{path}:5:13: site.timezone: unknown IANA time zone 'Asia/Jakrta'",
        f"{path}:8:3: storage.feds: unknown key 'feds' (did you mean 'feeds'?)",
        f"{path}:11:10: sources.1.id: duplicate source id 'seeds'",
        f"{path}:12:5: sources.2.url: required key 'url' is missing",
        f"{path}:14:48: feeds.0.sources.1: unknown source id 'kawat'",
        f"{path}:14:56: feeds.0.fromats: unknown key 'fromats' (did you mean 'formats'?)",
        f"{path}:14:79: feeds.0.limit: Input should be a valid integer, "
        "unable to parse string as an integer",
        f"{path}:19:11: digests.0.list: unknown list id 'pembacaa' (did you mean 'pembaca'?)",
        f"{path}:21:13: digests.0.window: expected a duration like 24h, or since_last, got '3x'",
        f"{path}:22:22: digests.0.schedule.cron: bad cron expression '61 7 * * *': "
        "Error validating expression '61': the last value (61) is higher than the "
        "maximum value (59)",
        f"{path}:26:45: digests.1.schedule.timezone: unknown IANA time zone 'Mars/Olympus'",
        f"{path}:27:9: digests.2.id: duplicate digest id 'harian'",
        f"{path}:30:15: digests.2.schedule: a schedule needs either 'cron' or 'every'",
    ]


def test_yaml_syntax_errors_are_located(write_config: WriteConfig) -> None:
    path = write_config("version: 1\nsite:\n  title: [unclosed\n  url: x\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4:6: (yaml): ")


def test_duplicate_keys_are_an_error_not_a_silent_override(write_config: WriteConfig) -> None:
    path = write_config("version: 1\nsite: {title: A, url: 'https://a.id'}\nsite: {title: B}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3:1: (yaml): ") and "duplicate key" in problem


def test_yaml_1_2_keeps_times_and_no_as_strings(write_config: WriteConfig) -> None:
    # YAML 1.1 (PyYAML) would read 7:30 as 450 and `no` as False.
    path = write_config("version: 1\nsite: {title: no, url: 'https://a.id', description: 7:30}\n")
    loaded = config_module.load(path)
    assert (loaded.site.title, loaded.site.description) == ("no", "7:30")


def test_sqlite_dramatiq_is_refused(write_config: WriteConfig) -> None:
    path = write_config(engine={"mode": "dramatiq", "broker_url": "redis://127.0.0.1:6379/0"})
    [problem] = problems_of(path)
    assert ": engine.mode: dramatiq mode needs PostgreSQL" in problem


def test_inline_database_password_is_refused(write_config: WriteConfig) -> None:
    path = write_config(storage={"database": "postgresql://kabar:hunter2@db/kabar"})
    [problem] = problems_of(path)
    assert "storage.database: put the database password in an env var" in problem
    assert "hunter2" not in problem


def test_missing_secret_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingSecretError, match="KABAR_SMTP_PASSWORD"):
        read_secret("KABAR_SMTP_PASSWORD", "SMTP login")
    monkeypatch.setenv("KABAR_SMTP_PASSWORD", "s3cret")
    assert read_secret("KABAR_SMTP_PASSWORD", "SMTP login") == "s3cret"


def test_database_password_comes_from_its_env_var(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        storage={"database": "postgresql://kabar@db/kabar", "password_env": "KABAR_DB_PASSWORD"}
    )
    loaded = config_module.load(path)
    with pytest.raises(MissingSecretError, match="KABAR_DB_PASSWORD"):
        _ = loaded.database_url
    monkeypatch.setenv("KABAR_DB_PASSWORD", "p@ss")
    assert loaded.database_url == "postgresql://kabar:p%40ss@db/kabar"


def test_check_exits_2_and_prints_every_problem(write_config: WriteConfig) -> None:
    path = write_config(BAD)
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 2
    assert result.output.count(f"{path}:") == 13


def test_check_prints_a_summary_for_a_valid_file(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config()
    monkeypatch.setenv("KABAR_CONFIG", str(path))
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    database = path.parent / "var" / "kabar.db"
    assert result.stdout == (
        f"{path}: ok: 1 source, 0 feeds, 1 list, 0 digests, delivery by outbox\n"
        f"database sqlite:///{database}: created by the first command that needs it\n"
    )
    assert not database.parent.exists()  # check changes nothing

    assert CliRunner().invoke(cli, ["ingest"]).exit_code == 0
    again = CliRunner().invoke(cli, ["check"])
    assert again.stdout.splitlines()[1] == (
        f"database sqlite:///{database}: reachable, schema up to date"
    )


def test_check_exits_2_on_a_database_it_cannot_open(
    write_config: WriteConfig, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Said once, with the URL masked: the password never shows."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KABAR_DB_PASSWORD", "rahasia-sekali")
    url = f"postgresql+psycopg://kabar@127.0.0.1:{port}/kabar"
    path = write_config(storage={"database": url, "password_env": "KABAR_DB_PASSWORD"})
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"kabar: storage.database: cannot open postgresql+psycopg://kabar:***@127.0.0.1:{port}"
    )
    assert "rahasia" not in result.output and "Traceback" not in result.output

    (project / "berkas").write_text("not a folder", encoding="utf-8")
    unusable = {
        "sqlite:///berkas/kabar.db": f"cannot create {project / 'berkas' / 'kabar.db'}",
        "sqlite:////proc/kabar.db": "cannot create /proc/kabar.db: /proc:",  # no files there
        "mysql://kabar@127.0.0.1/kabar": "cannot open mysql://kabar@127.0.0.1/kabar: No module",
    }
    for url, message in unusable.items():
        path = write_config(storage={"database": url})
        result = CliRunner().invoke(cli, ["-c", str(path), "check"])
        assert result.exit_code == 2, url
        assert message in result.stderr and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in project.iterdir()) == ["berkas", "kabar.yaml", "seeds"]


def test_a_database_password_in_the_url_is_refused_and_never_shown() -> None:
    from kabar.store import masked_url

    for url in (
        "postgresql://kabar:rahasia@db/kabar",
        "postgresql://kabar@db/kabar?password=rahasia",
    ):
        with pytest.raises(ValueError, match="env var named by password_env"):
            config_module.Storage(database=url)
    shown = masked_url("postgresql://kabar@db/kabar?sslmode=require&PASSWORD=rahasia")
    assert shown == "postgresql://kabar@db/kabar?PASSWORD=***&sslmode=require"  # sorted
    with pytest.raises(ValueError, match="not a database URL"):
        config_module.Storage(database="bukan url")
    with pytest.raises(ValueError, match="env var named by password_env"):  # decoded first
        config_module.Storage(database="postgresql://kabar@db/kabar?pass%77ord=rahasia")


def test_no_credentials_in_urls_that_feeds_mail_and_pages_show(write_config: WriteConfig) -> None:
    path = write_config(
        site={"title": "K", "url": "https://budi:rahasia@kabar.example.id"},
        web={"base_url": "https://budi@kabar.example.id"},
        storage={"database": "sqlite:///var/kabar.db", "feeds": "s3://feeds/kabar?secret=rahasia"},
    )
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    assert sorted(line.split(": ")[1] for line in result.stderr.splitlines()) == [
        "site.url", "storage.feeds", "web.base_url",
    ]  # fmt: skip
    assert "rahasia" not in result.output


def test_templates_come_only_from_the_root_or_template_dirs(
    write_config: WriteConfig, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "evil.mjml.j2").write_text("{{ 7*7 }}", encoding="utf-8")
    (project / "templates").mkdir()
    (project / "templates" / "sneaky.txt.j2").symlink_to(elsewhere / "evil.mjml.j2")
    templates = {
        "html": str(elsewhere / "evil.mjml.j2"),
        "text": "templates/sneaky.txt.j2",  # a link inside the root, to a file outside
        "archive": "/etc/passwd",
        "archive_index": "templates/mine.html.j2",  # fine: inside the root
    }
    digest = {"id": "harian", "list": "pembaca", "subject": "s", "templates": templates}
    path = write_config(digests=[digest])
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "digests.0.templates.html", "digests.0.templates.text", "digests.0.templates.archive",
    ]  # fmt: skip
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "is outside the project root and template_dirs" in lines[0]

    path = write_config(digests=[digest], template_dirs=[str(elsewhere), "/etc"])
    config_module.load(path)  # the admin named those folders: accepted


def test_a_config_that_is_no_file_or_far_too_big_is_refused(tmp_path: Path) -> None:
    """Not read to the end: /dev/zero would fill the memory, and a pipe would block."""
    pipe, big = tmp_path / "pipe.yaml", tmp_path / "big.yaml"
    os.mkfifo(pipe)
    big.write_bytes(b"#" * (2 << 20))
    for path, reason in ((Path("/dev/zero"), "not a regular file"), (pipe, "not a regular file"),
                         (big, "over 1 MiB")):  # fmt: skip
        result = CliRunner().invoke(cli, ["-c", str(path), "check"])
        assert result.exit_code == 2 and f"{path}: {reason}" in result.stderr
