"""Shared fixtures: real SQLite files, the real PostgreSQL when KABAR_TEST_DATABASE_URL is
set (each test in a schema of its own), config files written to tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kabar import config as config_module
from kabar.config import Config
from kabar.store import Store

from .support.database import postgres_schema

# Session fixtures: a private Postfix, Dovecot and policy sink (see tests/support/mailservers.py).
from .support.mailservers import dovecot, mail_root, mail_sink, postfix  # noqa: F401
from .support.project import BASE_CONFIG, SEED, WriteConfig

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
    yield from postgres_schema(os.environ["KABAR_TEST_DATABASE_URL"])


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
