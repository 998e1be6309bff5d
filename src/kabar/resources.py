"""Files kabar ships: default templates, the demo config, the demo's articles and their NOTICE.

An installed wheel carries them under `kabar/_bundle/`; an editable install reads them
from the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

# What `kabar init` copies from seeds/: the Tempo page and the month of IndoSum news.
DEMO_SEEDS = ("000_d64f9ee7272b09dd.txt", "berita-indosum.jsonl")

_PACKAGE_BUNDLE = Path(__file__).with_name("_bundle")
_REPOSITORY = Path(__file__).resolve().parents[2]


def bundled(relative: str) -> Path:
    for base in (_PACKAGE_BUNDLE, _REPOSITORY):
        candidate = base / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"kabar's bundled file {relative!r} is missing from this install")
