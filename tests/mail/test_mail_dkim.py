"""The cryptography-backed DKIM signer, verified by dkimpy."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import MissingSecretError
from kabar.mail.dkim import DkimKeyError, DkimSigner
from kabar.mail.message import MessageSkeleton
from kabar.mail.slots import SlotTemplate, new_markers

from ..support.digest import dns_for, rsa_key_pem
from ..support.project import WriteConfig

REQUIRED_SIGNED = {
    "from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
    "list-unsubscribe-post", "mime-version", "content-type",
}  # fmt: skip


@pytest.fixture(scope="module")
def pem() -> bytes:
    return rsa_key_pem()


def _skeleton(signer: DkimSigner, **options: str | None) -> MessageSkeleton:
    markers = new_markers()
    text = (
        f"Halo, {markers['name']}!\n\nRingkas  \t berita \nBerhenti: {markers['unsubscribe_url']}\n"
    )
    html = f'<p>Halo, {markers["name"]}!</p>\n<a href="{markers["unsubscribe_url"]}">x</a>\n'
    return MessageSkeleton(
        sender="Kabar Contoh <redaksi@kabar.example.id>",
        subject="Kabar pagi — édisi {{ 7*7 }}",
        date=datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=7))),
        list_id="Pembaca <pembaca.kabar.example.id>",
        text=SlotTemplate.split(text, markers),
        html_part=SlotTemplate.split(html * 200, markers),
        boundary_seed="harian:pembaca:2024-05-01",
        signer=signer,
        **{"feedback_id": "harian:pembaca:kabar", **options},  # type: ignore[arg-type]
    )


def _message(skeleton: MessageSkeleton, url: str = "https://kabar.example.id/u/T") -> bytes:
    return skeleton.build(
        email="budi@example.com",
        name="Büdi Santoso",
        message_id="<m1@kabar.example.id>",
        unsubscribe_url=url,
        unsubscribe_mailto="mailto:u+T@kabar.example.id",
        values={"name": "Büdi", "unsubscribe_url": url, "preferences_url": url},
    )


def test_signature_verifies_with_dkimpy_and_covers_the_required_headers(pem: bytes) -> None:
    signer = DkimSigner.from_pem("kabar.example.id", "k1", pem)
    message = _message(_skeleton(signer))
    assert dkim.verify(message, dnsfunc=dns_for(pem))
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    tags = dict(
        part.strip().split("=", 1)
        for part in re.sub(r"\r\n\s+", "", header.split("DKIM-Signature:", 1)[1]).split(";")
        if part.strip() and "=" in part
    )
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "kabar.example.id" and tags["s"] == "k1"
    assert set(tags["h"].split(":")) >= REQUIRED_SIGNED


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"Subject: Kabar pagi", b"Subject: Kabar sore"),
        lambda m: m.replace(b"/u/T>", b"/u/X>"),
        lambda m: m.replace(b"Halo,", b"Hola,", 1),
        # A second From added after signing: From is signed twice, so this breaks it.
        lambda m: m.replace(b"From: Kabar", b"From: Evil <e@evil.example>\r\nFrom: Kabar"),
    ],
    ids=["subject", "list-unsubscribe", "body", "added-from"],
)
def test_any_change_breaks_the_signature(pem: bytes, tamper: object) -> None:
    signer = DkimSigner.from_pem("kabar.example.id", "k1", pem)
    message = _message(_skeleton(signer))
    changed = tamper(message)  # type: ignore[operator]
    assert changed != message
    assert not dkim.verify(changed, dnsfunc=dns_for(pem))


def _header_names(message: bytes) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]


@pytest.mark.parametrize(
    "options",
    [{}, {"reply_to": "redaksi@kabar.example.id"}, {"feedback_id": None}],
    ids=["plain", "reply-to", "no-fid"],
)
def test_each_protected_header_is_signed_once_more_than_it_appears(
    pem: bytes, options: dict[str, str | None]
) -> None:
    signer = DkimSigner.from_pem("kabar.example.id", "k1", pem)
    message = _message(_skeleton(signer, **options))
    assert dkim.verify(message, dnsfunc=dns_for(pem))
    signature = message.split(b"\r\n\r\n", 1)[0].decode().split("DKIM-Signature:", 1)[1]
    h = re.sub(r"\s+", "", re.search(r"h=([^;]+);", signature).group(1)).split(":")  # type: ignore[union-attr]
    present = _header_names(message)
    for name in (
        "from", "to", "cc", "reply-to", "subject", "date", "message-id", "list-unsubscribe",
        "list-unsubscribe-post", "feedback-id", "mime-version", "content-type",
    ):  # fmt: skip
        assert h.count(name) == present.count(name) + 1, name


@pytest.mark.parametrize(
    "added",
    [b"Reply-To: Evil <e@evil.example>", b"Cc: list@evil.example", b"Feedback-ID: x:y:evil"],
    ids=["reply-to", "cc", "feedback-id"],
)
@pytest.mark.parametrize(
    "options",
    [{}, {"reply_to": "redaksi@kabar.example.id"}, {"feedback_id": None}],
    ids=["plain", "reply-to", "no-fid"],
)
def test_a_header_prepended_after_signing_breaks_it(
    pem: bytes, added: bytes, options: dict[str, str | None]
) -> None:
    signer = DkimSigner.from_pem("kabar.example.id", "k1", pem)
    message = _message(_skeleton(signer, **options))
    assert dkim.verify(message, dnsfunc=dns_for(pem))
    assert not dkim.verify(added + b"\r\n" + message, dnsfunc=dns_for(pem))


def test_without_one_click_the_absent_post_header_still_verifies(pem: bytes) -> None:
    signer = DkimSigner.from_pem("kabar.example.id", "k1", pem)
    message = _message(_skeleton(signer), url="http://localhost:8080/u/T")
    assert b"List-Unsubscribe-Post" not in message
    assert dkim.verify(message, dnsfunc=dns_for(pem))


def test_key_from_the_environment_as_pem_or_path(
    write_config: WriteConfig, pem: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = config_module.load(
        write_config(delivery={"dkim": {"domain": "kabar.example.id", "selector": "k1",
                                        "key_env": "KABAR_DKIM_KEY"}})
    )  # fmt: skip
    with pytest.raises(MissingSecretError, match="KABAR_DKIM_KEY"):
        DkimSigner.from_config(config)
    monkeypatch.setenv("KABAR_DKIM_KEY", pem.decode())
    assert DkimSigner.from_config(config) is not None
    (tmp_path / "dkim.pem").write_bytes(pem)
    monkeypatch.setenv("KABAR_DKIM_KEY", str(tmp_path / "dkim.pem"))
    signer = DkimSigner.from_config(config)
    assert signer is not None and signer.dns_record().startswith("v=DKIM1; k=rsa; p=MII")
    monkeypatch.setenv("KABAR_DKIM_KEY", str(tmp_path / "missing.pem"))
    with pytest.raises(DkimKeyError, match="can't be read"):
        DkimSigner.from_config(config)


def test_unusable_keys_are_refused() -> None:
    with pytest.raises(DkimKeyError, match="not an unencrypted PEM"):
        DkimSigner.from_pem(
            "d", "s", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
        )
    ed25519_pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    with pytest.raises(DkimKeyError, match="must be an RSA key"):
        DkimSigner.from_pem("d", "s", ed25519_pem)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "needs the environment variable KABAR_DKIM_KEY, which is not set"),
        ("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----", "not an unencrypted PEM"),
        ("keys/missing.pem", "names a DKIM key file that can't be read"),
    ],
    ids=["unset", "garbage", "missing-file"],
)
def test_check_refuses_an_unusable_dkim_key(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, value: str | None, message: str
) -> None:
    path = write_config(delivery={"dkim": {"domain": "kabar.example.id", "selector": "k1",
                                           "key_env": "KABAR_DKIM_KEY"}})  # fmt: skip
    if value is not None:
        monkeypatch.setenv("KABAR_DKIM_KEY", value)
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2, result.output
    assert "delivery.dkim: " in result.stderr and message in result.stderr
    assert "-----BEGIN" not in result.output  # the secret itself is never printed
    assert ": ok:" not in result.stdout


def test_check_prints_the_dkim_txt_record(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch, pem: bytes
) -> None:
    path = write_config(delivery={"dkim": {"domain": "kabar.example.id", "selector": "k1",
                                           "key_env": "KABAR_DKIM_KEY"}})  # fmt: skip
    monkeypatch.setenv("KABAR_DKIM_KEY", pem.decode())
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 0, result.output
    record = DkimSigner.from_pem("kabar.example.id", "k1", pem).dns_record()
    assert f'k1._domainkey.kabar.example.id: "{record}"' in result.stdout
    assert dns_for(pem)(b"k1._domainkey.kabar.example.id.").decode() == record
