"""Quoted-printable (RFC 2045) that is already in DKIM's relaxed canonical body form.

Relaxed body canonicalisation (RFC 6376 §3.4.4) collapses runs of spaces and tabs and
drops them at line ends. This encoder never emits either (a space that follows a space
or ends a line is written `=20`, a tab `=09`), so the bytes it writes are their own
canonical form and the body hash is one sha256 over them.

Every encoded piece ends with a line break, hard (CRLF) or soft (`=` CRLF), so pieces
encoded separately (the fixed parts of an issue once, a subscriber's values per message)
can be concatenated and still decode to the concatenated text.
"""

from __future__ import annotations

import re

MAX_LINE = 76  # characters per encoded line, the soft-break `=` included
_UNSAFE = re.compile(rb"[^\x21-\x3c\x3e-\x7e ]")  # not printable ASCII, or '='
_SPACE_BEFORE_SPACE_OR_END = re.compile(rb" (?= |$)")
_ENCODED_BYTE = {byte: b"=%02X" % byte for byte in range(256)}


def _escape(match: re.Match[bytes]) -> bytes:
    return _ENCODED_BYTE[match.group()[0]]


def _encode_line(line: str) -> bytes:
    encoded = _UNSAFE.sub(_escape, line.encode("utf-8"))
    encoded = _SPACE_BEFORE_SPACE_OR_END.sub(b"=20", encoded)
    # "From " at a line start gets mangled by mbox-style software, breaking the signature.
    return encoded.replace(b"From ", b"=46rom ")


def _wrap(line: bytes, limit: int) -> list[bytes]:
    """Cut `line` into lines of at most `limit` characters, each but the last ending in
    a soft-break `=`, never cutting inside an `=XX` escape."""
    out = []
    while len(line) > limit:
        cut = limit - 1
        escape = line.rfind(b"=", cut - 2, cut)
        if escape != -1:
            cut = escape
        out.append(line[:cut] + b"=")
        line = line[cut:]
    out.append(line)
    return out


def encode(text: str) -> bytes:
    """`text` as quoted-printable with CRLF line ends.

    Text that doesn't end with a newline ends with a soft break, so whatever follows
    starts on a fresh line of its own.
    """
    if not text:
        return b""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    last = lines.pop()
    out = []
    for line in lines:
        out.extend(_wrap(_encode_line(line), MAX_LINE))
    if last:
        out.extend(_wrap(_encode_line(last), MAX_LINE - 1))
        out[-1] += b"="
    out.append(b"")
    return b"\r\n".join(out)
