"""Golden files: expected output kept in tests/golden/, compared byte for byte by
`assert_golden`, the one comparison every golden test uses."""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def assert_golden(relative: str, actual: bytes | Mapping[str, bytes]) -> None:
    """Compare with tests/golden/<relative> byte for byte.

    `actual` is one file's bytes, or a folder's files by relative path: then the golden
    folder must hold exactly those files, and each is compared byte for byte.

    To regenerate on purpose, and only when the change in output is intended, run the
    golden tests with KABAR_REGENERATE_GOLDEN=1, e.g.
    `KABAR_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/render tests/publish tests/sources`:
    the files are rewritten (a folder is replaced whole), then compared as usual. Read
    `git diff tests/golden` before committing them.
    """
    path = GOLDEN / relative
    regenerate = os.environ.get("KABAR_REGENERATE_GOLDEN") == "1"
    if isinstance(actual, bytes):
        if regenerate:
            _write(path, actual)
        _compare(path, actual)
        return
    if regenerate:
        shutil.rmtree(path, ignore_errors=True)
        for name, data in actual.items():
            _write(path / name, data)
    assert sorted(actual) == sorted(_files(path)), f"the files under {path} differ"
    for name, data in actual.items():
        _compare(path / name, data)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def _compare(path: Path, actual: bytes) -> None:
    assert path.exists(), f"no golden file {path}; run with KABAR_REGENERATE_GOLDEN=1 to create it"
    expected = path.read_bytes()
    if actual != expected:
        diff = difflib.unified_diff(
            expected.decode(errors="replace").splitlines(),
            actual.decode(errors="replace").splitlines(),
            "golden", "actual", lineterm="", n=2,
        )  # fmt: skip
        pytest.fail(f"{path} differs:\n" + "\n".join(list(diff)[:60]))
