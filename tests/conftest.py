"""Shared fixtures: real SQLite files, the real PostgreSQL when KABAR_TEST_DATABASE_URL is
set (each test in a schema of its own), config files written to tmp_path."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kabar import config as config_module
from kabar.config import Config
from kabar.store import Store

# Session fixtures: a private Postfix, Dovecot and policy sink (see tests/mailservers.py).
from .mailservers import dovecot, mail_root, mail_sink, postfix  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "000_d64f9ee7272b09dd.txt"
DATA = Path(__file__).with_name("data")
GOLDEN = Path(__file__).with_name("golden")
# The as-of time used to resolve the seed's relative times ("4 jam lalu") in tests.
SEED_AS_OF = datetime.fromisoformat("2024-05-01T12:00:00+07:00")

BASE_CONFIG: dict[str, Any] = {
    "version": 1,
    "site": {
        "title": "Kabar Contoh",
        "url": "https://kabar.example.id",
        "language": "id",
        "timezone": "Asia/Jakarta",
        "contact": "Redaksi Kabar Contoh, Jakarta",
    },
    "sources": [
        {
            "id": "seeds",
            "kind": "pages",
            "path": "seeds/",
            "base_url": "https://kabar.example.id/read",
        }
    ],
    "lists": [{"id": "pembaca", "from": "Kabar Contoh <redaksi@kabar.example.id>"}],
}


KEEP_ENV = {"KABAR_TEST_DATABASE_URL", "KABAR_REGENERATE_GOLDEN"}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KABAR_* setting from the shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KABAR_") and name not in KEEP_ENV:
            monkeypatch.delenv(name)


def database_urls() -> list[Any]:
    urls = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get("KABAR_TEST_DATABASE_URL"):
        urls.append(pytest.param("postgres", id="postgres", marks=pytest.mark.postgres))
    return urls


@pytest.fixture(params=database_urls())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kabar.db'}"
        return
    yield from _postgres_schema(os.environ["KABAR_TEST_DATABASE_URL"])


def _postgres_schema(base_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store.open(database_url) as opened:
        yield opened


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding the seed page, as `kabar init` would make."""
    (tmp_path / "seeds").mkdir()
    shutil.copy(SEED, tmp_path / "seeds" / SEED.name)
    return tmp_path


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(project: Path) -> WriteConfig:
    """Write BASE_CONFIG, updated with the given top-level keys, to project/kabar.yaml."""

    def write(text: str | None = None, **overrides: Any) -> Path:
        path = project / "kabar.yaml"
        if text is not None:
            path.write_text(text, encoding="utf-8")
            return path
        data = {**BASE_CONFIG, **overrides}
        data.setdefault("storage", {"database": "sqlite:///var/kabar.db", "feeds": "public/"})
        with path.open("w", encoding="utf-8") as handle:
            YAML().dump(data, handle)
        return path

    return write


@pytest.fixture
def config(write_config: WriteConfig) -> Config:
    return config_module.load(write_config())


def assert_golden(relative: str, actual: bytes) -> None:
    """Compare with tests/golden/<relative> byte for byte.

    KABAR_REGENERATE_GOLDEN=1 rewrites the file instead: only on purpose, after reading the
    diff of what changed.
    """
    path = GOLDEN / relative
    if os.environ.get("KABAR_REGENERATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
    assert path.exists(), f"no golden file {path}; run with KABAR_REGENERATE_GOLDEN=1 to create it"
    expected = path.read_bytes()
    if actual != expected:
        import difflib

        diff = difflib.unified_diff(
            expected.decode(errors="replace").splitlines(),
            actual.decode(errors="replace").splitlines(),
            "golden", "actual", lineterm="", n=2,
        )  # fmt: skip
        pytest.fail(f"{path} differs:\n" + "\n".join(list(diff)[:60]))
