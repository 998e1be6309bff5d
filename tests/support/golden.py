"""Golden files: expected output kept in tests/golden/, compared byte for byte."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


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
        diff = difflib.unified_diff(
            expected.decode(errors="replace").splitlines(),
            actual.decode(errors="replace").splitlines(),
            "golden", "actual", lineterm="", n=2,
        )  # fmt: skip
        pytest.fail(f"{path} differs:\n" + "\n".join(list(diff)[:60]))
