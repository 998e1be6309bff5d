"""The project every test starts from: the seed page, the base config, and the as-of time
that resolves the seed's relative times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_d64f9ee7272b09dd.txt"
DATA = ROOT / "tests" / "data"
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

# The write_config fixture: BASE_CONFIG with top-level keys replaced, or a given text.
WriteConfig = Callable[..., Path]
