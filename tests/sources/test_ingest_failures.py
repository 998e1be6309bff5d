"""Rejected records are failures, ingest goes into configured sources, and the CLI's
errors name what was wrong (issue: rejected records, sources that exist, option errors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kabar.cli import cli
from kabar.config import Config
from kabar.ingest import SHOWN_PER_FILE, ingest_path, ingest_source
from kabar.sources import MAX_TITLE
from kabar.store import Store

from ..support.project import SEED, SEED_AS_OF, WriteConfig

GOOD = {
    "url": "https://kabar.example.id/j/1",
    "title": "Harga cabai turun",
    "body": "Harga cabai di pasar induk turun.",
    "published": "2024-05-01T07:00:00+07:00",
}
SOURCES = [
    {"id": "seeds", "kind": "pages", "path": "seeds/", "base_url": "https://kabar.example.id/read"},
    {"id": "wire", "kind": "json", "path": "wire/"},
]


def run(config_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config_path), *args])


def jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rejected_records_are_failures_with_file_and_line(
    write_config: WriteConfig, project: Path
) -> None:
    config_path = write_config(sources=SOURCES)
    (project / "wire").mkdir()
    file = jsonl(project / "wire" / "mixed.jsonl", [
        GOOD, {"url": "https://kabar.example.id/j/2", "body": "b", "published": GOOD["published"]},
        "{broken", GOOD | {"url": "https://kabar.example.id/j/3", "published": "kemarin"},
    ])  # fmt: skip
    result = run(config_path, "ingest", "--path", str(file))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{file}:2: missing required field(s): title",
        f"{file}:3: invalid JSON: Expecting property name enclosed in double quotes",
        f"{file}:4: published: 'kemarin' is neither an ISO 8601 date-time nor a relative time"
        " such as '4 jam lalu'",
    ]
    assert result.stdout == "wire: 1 file, 1 article (1 new, 0 updated, 0 unchanged), 3 failed\n"


def test_many_bad_records_show_the_first_per_file_and_a_count(
    config: Config, store: Store, tmp_path: Path
) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text('{"title": "x"}\n' * 5000, encoding="utf-8")
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    assert report.failed == 5000
    assert len(report.failures) == SHOWN_PER_FILE + 1
    assert report.failures[0] == f"{file}:1: missing required field(s): url, body, published"
    assert report.failures[-1] == f"{file}: {5000 - SHOWN_PER_FILE} more rejected records"


def test_json_lines_split_on_newline_only(config: Config, store: Store, tmp_path: Path) -> None:
    odd = GOOD | {"title": "Satu\u2028dua\u0085tiga", "body": "a\u2029b\x1cc"}
    file = jsonl(tmp_path / "odd.jsonl", [odd, {"title": "no url"}])
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 1
    assert report.failures == [f"{file}:2: missing required field(s): url, body, published"]


def test_ingest_json_is_one_summary_object(write_config: WriteConfig, project: Path) -> None:
    config_path = write_config(sources=SOURCES)
    (project / "wire").mkdir()
    jsonl(project / "wire" / "a.jsonl", [GOOD, {"title": "x"}])
    result = run(config_path, "ingest", "--json", "--as-of", "2024-05-01T12:00+07:00")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["articles"], summary["failed"]) == (12, 1)
    assert [s["source"] for s in summary["sources"]] == ["seeds", "wire"]
    assert summary["sources"][1]["failures"][0].endswith(
        "a.jsonl:2: missing required field(s): url, body, published"
    )
    assert result.stderr == ""  # said once, as JSON


def test_ingest_path_goes_into_a_configured_source(
    write_config: WriteConfig, project: Path, tmp_path: Path
) -> None:
    config_path = write_config(sources=SOURCES)
    (project / "wire").mkdir()
    inside = jsonl(project / "wire" / "in.jsonl", [GOOD])
    outside = jsonl(tmp_path / "out.jsonl", [GOOD | {"url": "https://kabar.example.id/j/9"}])

    unknown = run(config_path, "ingest", "--path", str(outside), "nope")
    assert unknown.exit_code == 2
    assert "SOURCE_ID: unknown source id 'nope' (configured: seeds, wire)" in unknown.stderr
    asked = run(config_path, "ingest", "--path", str(outside))
    assert asked.exit_code == 2
    assert "name the source" in asked.stderr and "configured: seeds, wire" in asked.stderr

    assert run(config_path, "ingest", "--path", str(inside)).exit_code == 0
    assert run(config_path, "ingest", "--path", str(outside), "wire").exit_code == 0
    listed = run(config_path, "articles", "--json", "--source", "wire")
    assert sorted(json.loads(line)["url"] for line in listed.stdout.splitlines()) == [
        "https://kabar.example.id/j/1", "https://kabar.example.id/j/9",
    ]  # fmt: skip


def test_one_url_is_one_article_whatever_the_source(
    config: Config, store: Store, tmp_path: Path
) -> None:
    first = jsonl(tmp_path / "a.jsonl", [GOOD])
    second = jsonl(tmp_path / "b.jsonl", [GOOD | {"title": "Harga cabai turun lagi"}])
    ingest_path(config, store, first, "seeds", as_of=SEED_AS_OF)
    report = ingest_path(config, store, second, "other", as_of=SEED_AS_OF)
    assert (report.stored.inserted, report.stored.updated, report.stored.duplicates) == (0, 0, 1)
    assert "0 unchanged, 1 already stored from another source)" in report.describe()
    again = ingest_path(config, store, second, "seeds", as_of=SEED_AS_OF)
    assert (again.stored.inserted, again.stored.updated) == (0, 1)
    [article] = store.articles()
    assert (article.source, article.title) == ("seeds", "Harga cabai turun lagi")


def test_one_url_twice_in_one_batch_is_one_article(
    config: Config, store: Store, tmp_path: Path
) -> None:
    file = jsonl(tmp_path / "a.jsonl", [GOOD, GOOD | {"guid": "other-guid", "title": "Baru"}])
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 1
    assert [a.title for a in store.articles()] == ["Baru"]


def test_long_titles_are_cut_with_a_counted_warning(
    config: Config, store: Store, tmp_path: Path
) -> None:
    file = jsonl(tmp_path / "a.jsonl", [GOOD | {"title": "kata " * 20_000}])
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    [article] = store.articles()
    assert len(article.title) <= MAX_TITLE and article.title.endswith("kata…")
    assert report.warned == 1 and "cut from 99999 to 300 characters" in report.warnings[0]
    assert report.describe().endswith("0 failed, 1 warning")


def test_a_warning_names_the_line_of_its_record(
    config: Config, store: Store, tmp_path: Path
) -> None:
    """Like a rejected record, a kept one with a dropped link says where it is."""
    file = jsonl(tmp_path / "a.jsonl", [
        GOOD, GOOD | {"url": "https://kabar.example.id/j/2", "image_url": "javascript:alert(1)"},
    ])  # fmt: skip
    report = ingest_path(config, store, file, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 2
    assert report.warnings == [
        f"{file}:2: dropped image_url 'javascript:alert(1)' of "
        "'https://kabar.example.id/j/2': not http(s)"
    ]


def test_cli_errors_name_the_option(write_config: WriteConfig) -> None:
    config_path = write_config()
    bad_time = run(config_path, "ingest", "--as-of", "garbage")
    assert bad_time.exit_code == 2
    assert "--as-of: cannot read 'garbage' as an ISO 8601 time" in bad_time.stderr
    unknown = run(config_path, "articles", "--source", "nope")
    assert unknown.exit_code == 2
    assert "--source: unknown source id 'nope' (configured: seeds)" in unknown.stderr


def test_every_ingest_and_articles_option_has_help() -> None:
    from kabar.cli.content import articles, ingest

    for command in (ingest, articles):
        for param in command.params:
            if param.param_type_name == "option":
                assert getattr(param, "help", None), f"{command.name} {param.name}"


def test_the_daemon_style_ingest_logs_nothing_itself(
    config: Config, store: Store, caplog: Any
) -> None:
    """The summary is said once: by whoever called ingest (the CLI prints, the daemon logs)."""
    with caplog.at_level("DEBUG", logger="kabar.ingest"):
        ingest_source(config, store, config.source("seeds"), as_of=SEED_AS_OF)
    assert [r.getMessage() for r in caplog.records if "failed" in r.getMessage()] == []


def test_what_is_not_a_file_of_the_folder_is_reported_and_not_read(
    config: Config, store: Store, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A file dropped into the folder as a link to a file elsewhere publishes nothing; a
    broken link, a linked folder and a pipe are each a failure with its reason, never a
    silent skip (and the pipe never blocks the run)."""
    elsewhere = tmp_path_factory.mktemp("private")
    secret = jsonl(elsewhere / "private.jsonl", [GOOD | {"url": "https://kabar.example.id/j/7"}])
    seeds = project / "seeds"
    (seeds / "sneaky.jsonl").symlink_to(secret)
    (seeds / "inside.txt").symlink_to(seeds / SEED.name)
    (seeds / "broken.jsonl").symlink_to(elsewhere / "gone.jsonl")
    (seeds / "folder").symlink_to(elsewhere)
    os.mkfifo(seeds / "pipe.jsonl")
    report = ingest_path(config, store, seeds, "seeds", as_of=SEED_AS_OF)
    assert report.failures == [
        f"{seeds / 'broken.jsonl'}: a broken link (to {elsewhere / 'gone.jsonl'})",
        f"{seeds / 'folder'}: a link to a folder: not followed",
        f"{seeds / 'pipe.jsonl'}: not a regular file (a pipe, socket or device): not read",
        f"{seeds / 'sneaky.jsonl'}: a link to {secret}, outside {seeds}: not read",
    ]
    assert report.failed == 4 and report.files == 2  # the page, and a link to it inside
    assert "https://kabar.example.id/j/7" not in {a.url for a in store.articles()}
    named = ingest_path(config, store, seeds / "pipe.jsonl", "seeds", as_of=SEED_AS_OF)
    assert named.failures == [
        f"{seeds / 'pipe.jsonl'}: not a regular file (a pipe, socket or device): not read"
    ]


def test_a_file_name_cannot_forge_a_report_line(
    config: Config, store: Store, project: Path
) -> None:
    """A newline (or an escape sequence) in a name is shown escaped, on its own line."""
    (project / "seeds" / "evil\nFAKE: 0 failed\x1b[2K.jsonl").write_text("{broken", "utf-8")
    report = ingest_path(config, store, project / "seeds", "seeds", as_of=SEED_AS_OF)
    [failure] = report.failures
    assert "\n" not in failure and "\x1b" not in failure
    assert "evil\\nFAKE: 0 failed\\x1b[2K.jsonl" in failure
