"""DKIM signatures (RFC 6376): rsa-sha256, relaxed/relaxed, signed with `cryptography`.

dkimpy spends about 7 ms per RSA-2048 signature in pure-Python arithmetic; OpenSSL
through `cryptography` takes a fraction of a millisecond. The headers that are the same
for every subscriber of an issue are canonicalised once (`Canonical`), so a message
costs one sha256 over its body, a few short canonicalisations, and the RSA signature.
dkimpy stays in the test suite as the independent verifier.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kabar.config import Config, read_secret

_FOLD = re.compile(rb"\r\n(?=[ \t])")
_WSP = re.compile(rb"[ \t]+")
MIN_KEY_BITS = 1024  # receivers ignore shorter keys; 2048 is what to generate
# Listed in h= once more than they appear (RFC 6376 §8.15), so one added after signing,
# present or absent before (a Reply-To or Cc sending replies elsewhere), breaks the
# signature. Every other header a message has is oversigned as well.
OVERSIGNED = (
    b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id", b"mime-version",
    b"content-type",
)  # fmt: skip


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """One header in relaxed canonical form, `name:value` CRLF (RFC 6376 §3.4.2)."""
    value = _WSP.sub(b" ", _FOLD.sub(b"", value)).strip(b" \t\r\n")
    return name.strip().lower() + b":" + value + b"\r\n"


def split_header(line: bytes) -> tuple[bytes, bytes]:
    """`Name: value` (possibly folded, CRLF-terminated) → (name, value)."""
    name, _, value = line.partition(b":")
    return name, value


@functools.lru_cache(maxsize=8)
def _load_key(pem: bytes) -> Any:
    """Loading checks the RSA key's consistency (tens of ms): once per process."""
    return serialization.load_pem_private_key(pem, password=None)


class DkimKeyError(ValueError):
    """The configured DKIM key can't be used."""


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    key: rsa.RSAPrivateKey

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: bytes) -> DkimSigner:
        try:
            key = _load_key(pem)
        except (ValueError, TypeError) as exc:
            raise DkimKeyError(
                f"the DKIM key is not an unencrypted PEM private key: {exc}"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimKeyError("the DKIM key must be an RSA key (rsa-sha256)")
        if key.key_size < MIN_KEY_BITS:
            raise DkimKeyError(f"the DKIM key has {key.key_size} bits; use 2048")
        return cls(domain=domain, selector=selector, key=key)

    @classmethod
    def from_config(cls, config: Config) -> DkimSigner | None:
        """The signer `delivery.dkim` describes, or None when signing is off.

        The environment variable holds the PEM key itself, or the path of a PEM file.
        """
        settings = config.delivery.dkim
        if settings is None:
            return None
        secret = read_secret(settings.key_env, "DKIM signing")
        if "-----BEGIN" in secret:
            pem = secret.encode()
        else:
            try:
                pem = config.resolve(secret).read_bytes()
            except OSError as exc:
                raise DkimKeyError(
                    f"{settings.key_env} names a DKIM key file that can't be read: {exc.strerror}"
                ) from None
        return cls.from_pem(settings.domain, settings.selector, pem)

    def dns_record(self) -> str:
        """The TXT record to publish at `<selector>._domainkey.<domain>`."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"

    def prepare(self, fixed: Sequence[bytes], varying: Sequence[bytes]) -> Canonical:
        """Canonicalise the headers that never change; `varying` names those that will
        be given per message. Each of them and each of OVERSIGNED is listed once more
        (over-signing), so a header of that name added later breaks the signature."""
        fixed_lines = [split_header(line) for line in fixed]
        names = [name.strip().lower() for name, _ in fixed_lines]
        varying_names = [name.lower() for name in varying]
        oversigned = [
            name
            for name in dict.fromkeys((*OVERSIGNED, *names, *varying_names))
            if name != b"dkim-signature"
        ]
        h = b":".join([*names, *varying_names, *oversigned])
        tags_head = (
            (
                f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector};\r\n h="
            ).encode()
            + _fold_list(h)
            + b";\r\n bh="
        )
        return Canonical(
            signer=self,
            fixed=b"".join(relaxed_header(name, value) for name, value in fixed_lines),
            varying=tuple(varying_names),
            tags_head=tags_head,
            tags_head_canonical=relaxed_header(b"dkim-signature", tags_head)[:-2],
        )


@dataclass(frozen=True)
class Canonical:
    """An issue's signing state: the fixed headers already canonicalised."""

    signer: DkimSigner
    fixed: bytes
    varying: tuple[bytes, ...]
    tags_head: bytes  # the tags up to "bh=", as written
    tags_head_canonical: bytes  # the same, canonicalised

    def sign(self, varying: Iterable[bytes | None], body: Iterable[bytes]) -> bytes:
        """The `DKIM-Signature:` header line (CRLF-terminated) for one message.

        `varying` gives the per-message header lines in the order `prepare` named them,
        None for one this message doesn't have (it then signs as absent); `body`, given
        in pieces so it is hashed without being joined first, must already be in relaxed
        canonical form (kabar.mail.qp writes it so).
        """
        digest = hashlib.sha256()
        for piece in body:
            digest.update(piece)
        body_hash = base64.b64encode(digest.digest())
        tags = self.tags_head + body_hash + b";\r\n b="
        signed = [self.fixed]
        for expected, line in zip(self.varying, varying, strict=True):
            if line is None:
                continue
            name, value = split_header(line)
            assert name.lower() == expected, (name, expected)
            signed.append(relaxed_header(name, value))
        # The signature header itself, with an empty b= and no CRLF (§3.7).
        signed.append(self.tags_head_canonical + body_hash + b"; b=")
        signature = self.signer.key.sign(b"".join(signed), padding.PKCS1v15(), hashes.SHA256())
        return b"DKIM-Signature: " + tags + _fold_base64(base64.b64encode(signature)) + b"\r\n"


def _fold_list(h: bytes, width: int = 70) -> bytes:
    """Fold the h= list after colons so header lines stay short."""
    lines = [b""]
    for name in h.split(b":"):
        if lines[-1] and len(lines[-1]) + len(name) > width:
            lines.append(b"")
        lines[-1] += name + b":"
    return b"\r\n  ".join(lines)[:-1]


def _fold_base64(value: bytes, width: int = 72) -> bytes:
    return b"\r\n  ".join(value[i : i + width] for i in range(0, len(value), width))
