"""Quoted-printable that decodes back exactly and is its own DKIM relaxed canonical form."""

from __future__ import annotations

import quopri
import random
import re

import pytest
from dkim.canonicalization import Relaxed

from kabar.mail import qp

ALPHABET = "ab =\t.Fé—\n "


def _random_texts(count: int) -> list[str]:
    rng = random.Random(5)
    texts = []
    for _ in range(count):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 260)))
        texts.append(text.replace("F", "From ") if rng.random() < 0.3 else text)
    return texts


@pytest.mark.parametrize("text", _random_texts(400))
def test_round_trip_line_length_and_canonical_form(text: str) -> None:
    encoded = qp.encode(text)
    assert quopri.decodestring(encoded).decode().replace("\r\n", "\n") == text
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= qp.MAX_LINE for line in lines)
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    # Relaxed canonicalisation changes nothing, so one sha256 of these bytes is the body hash.
    body = b"head\r\n" + encoded + b"tail\r\n"
    assert Relaxed.canonicalize_body(body) == body


def test_pieces_encoded_apart_concatenate() -> None:
    pieces = ["Halo, ", "Budi Santoso", "!\nBaca: ", "https://e.x/" + "a" * 90, "\n"]
    joined = b"".join(qp.encode(piece) for piece in pieces)
    assert quopri.decodestring(joined).decode().replace("\r\n", "\n") == "".join(pieces)


def test_escapes_are_never_cut_at_a_soft_break() -> None:
    for offset in range(70, 77):
        text = "x" * offset + "é=" * 20 + "\n"
        encoded = qp.encode(text)
        assert not re.search(rb"=[0-9A-F]?=?\r\n", encoded.replace(b"=\r\n", b"\r\n")), offset
        assert quopri.decodestring(encoded).decode().replace("\r\n", "\n") == text


def test_from_at_a_line_start_is_escaped() -> None:
    assert qp.encode("From here\n") == b"=46rom here\r\n"
