"""Per-subscriber values in rendered text, by split and join.

Rendering writes a marker where a subscriber's value goes (`Slots.markers`). The
rendered text is then split at the markers once; each message joins the fixed pieces
with that subscriber's values. Nothing is evaluated again, so article text such as
`{{ 7*7 }}` stays literal, and a marker can't be forged: it holds a random nonce that
exists only for the duration of one render.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SLOT_NAMES = ("name", "unsubscribe_url", "preferences_url")


def new_markers(names: Sequence[str] = SLOT_NAMES) -> dict[str, str]:
    """Markers for one render: plain letters and digits, which every stage copies as-is."""
    nonce = secrets.token_hex(8)
    return {name: f"kabarslot{nonce}x{name.replace('_', '')}x" for name in names}


@dataclass(frozen=True)
class SlotTemplate:
    """Rendered text cut at its slots: pieces[0] slots[0] pieces[1] … pieces[-1]."""

    pieces: tuple[str, ...]
    slots: tuple[str, ...]

    @classmethod
    def split(cls, text: str, markers: Mapping[str, str]) -> SlotTemplate:
        by_marker = {marker: name for name, marker in markers.items()}
        pattern = re.compile("|".join(re.escape(marker) for marker in by_marker))
        parts = pattern.split(text)
        found = tuple(by_marker[match.group()] for match in pattern.finditer(text))
        return cls(pieces=tuple(parts), slots=found)

    def fill(self, values: Mapping[str, str]) -> str:
        out = [self.pieces[0]]
        for name, piece in zip(self.slots, self.pieces[1:], strict=True):
            out.append(values[name])
            out.append(piece)
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"pieces": list(self.pieces), "slots": list(self.slots)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotTemplate:
        return cls(pieces=tuple(data["pieces"]), slots=tuple(data["slots"]))
