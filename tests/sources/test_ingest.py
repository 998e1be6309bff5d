from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from click.testing import CliRunner

from kabar.cli import cli
from kabar.config import Config
from kabar.ingest import ingest_path
from kabar.sources import MAX_FILE_BYTES
from kabar.store import Store

from ..support.project import SEED, SEED_AS_OF, WriteConfig

GOOD_JSON = {
    "url": "https://kabar.example.id/j/1",
    "title": "Harga cabai turun",
    "body": "Harga cabai di pasar induk turun.",
    "published": "2024-05-01T07:00:00+07:00",
}


def messy_folder(root: Path) -> Path:
    """Good files next to broken, empty, binary and very large ones."""
    folder = root / "inbox"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(SEED, folder / "seed.txt")
    (folder / "nested" / "good.json").write_text(json.dumps(GOOD_JSON), encoding="utf-8")
    (folder / "broken.json").write_text('{"url": "https://x", "title": ', encoding="utf-8")
    (folder / "broken.xml").write_text("<rss><channel><item><title>x</ti", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(2048))
    (folder / "latin1.txt").write_bytes("Judul\n\nSenin, 1 Mei 2024\n\nCaf\xe9\n".encode("latin-1"))
    with (folder / "huge.jsonl").open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    (folder / ".hidden.txt").write_text("not read", encoding="utf-8")
    return folder


def test_bad_files_are_skipped_with_reasons_and_the_rest_ingested(
    config: Config, store: Store, tmp_path: Path
) -> None:
    folder = messy_folder(tmp_path)
    report = ingest_path(config, store, folder, "seeds", as_of=SEED_AS_OF)
    assert report.stored.inserted == 12  # 11 from the seed page, 1 from the JSON
    assert store.count() == 12
    reasons = {
        Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in report.failures
    }
    assert reasons == {
        "broken.json": "invalid JSON at line 1: Expecting value",
        "broken.xml": reasons["broken.xml"],
        "empty.txt": "empty file",
        "huge.jsonl": "file is 20.0 MiB, over the 20 MiB limit",
        "latin1.txt": "not UTF-8 text (byte 29)",
        "photo.jpg": "binary file (NUL bytes), not an article",
    }
    assert reasons["broken.xml"].startswith("not a valid RSS or Atom feed")


def test_the_cli_exits_1_when_some_files_failed_and_0_when_all_were_fine(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config()
    runner = CliRunner()
    messy = runner.invoke(
        cli, ["--config", str(path), "ingest", "--path", str(messy_folder(tmp_path)), "seeds"]
    )
    assert messy.exit_code == 1
    assert "empty.txt: empty file" in messy.stderr
    assert "12 new" in messy.stdout
    for _ in range(2):
        clean = runner.invoke(cli, ["--config", str(path), "ingest", "--as-of", "2024-05-01T12:00"])
        assert clean.exit_code == 0, clean.output
    assert clean.stdout == (
        "seeds: 1 file, 11 articles (0 new, 0 updated, 11 unchanged), 0 failed\n"
    )


def test_reingesting_is_idempotent_and_an_edit_is_an_update(
    config: Config, store: Store, project: Path
) -> None:
    seeds = project / "seeds"
    first = ingest_path(config, store, seeds, "seeds", as_of=SEED_AS_OF)
    again = ingest_path(config, store, seeds, "seeds", as_of=SEED_AS_OF)
    page = seeds / SEED.name
    page.write_text(page.read_text(encoding="utf-8").replace("Xi Jinping dan Kim", "Xi dan Kim", 1))
    edited = ingest_path(config, store, seeds, "seeds", as_of=SEED_AS_OF)
    assert (first.stored.inserted, again.stored.unchanged) == (11, 11)
    assert (edited.stored.updated, edited.stored.unchanged, edited.stored.inserted) == (1, 10, 0)


def test_an_unknown_source_id_is_a_usage_error(write_config: WriteConfig) -> None:
    result = CliRunner().invoke(cli, ["--config", str(write_config()), "ingest", "kawat"])
    assert result.exit_code == 2
    assert "SOURCE_ID: unknown source id(s): kawat (configured: seeds)" in result.stderr


def test_an_as_of_without_an_offset_is_the_sites_local_time(write_config: WriteConfig) -> None:
    """As a `published` time without one is: 12:00 in Jakarta, not 12:00 UTC."""
    path = write_config()
    runner = CliRunner()
    ingested = runner.invoke(cli, ["-c", str(path), "ingest", "--as-of", "2024-05-01T12:00"])
    assert ingested.exit_code == 0, ingested.output
    listed = runner.invoke(cli, ["-c", str(path), "articles", "--json"])
    times = {json.loads(line)["published"] for line in listed.stdout.splitlines()}
    assert "2024-05-01T08:00:00+07:00" in times  # the page's "4 jam lalu"
