"""Subscribers get their own language and name, rendered once per locale, and the
preview carries exactly what real mail carries (same recipient links, same headers)."""

from __future__ import annotations

import email
import json
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from kabar.cli import cli
from kabar.config import Config
from kabar.ledger import Ledger
from kabar.store import Store

from ..support.delivery_setup import SECRET, delivery_config, prepare_store
from ..support.digest import dns_for, rsa_key_pem
from ..support.project import WriteConfig

DKIM = {"domain": "kabar.example.id", "selector": "k1", "key_env": "KABAR_DKIM_KEY"}


@pytest.fixture
def pem(monkeypatch: pytest.MonkeyPatch) -> bytes:
    key = rsa_key_pem()
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    monkeypatch.setenv("KABAR_DKIM_KEY", key.decode())
    return key


def kabar(config: Config, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-q", "-c", str(config.path), *args])
    return result.exit_code, result.stdout + result.stderr


def delivered(project: Path) -> dict[str, bytes]:
    """The outbox's messages by recipient address."""
    found = {}
    for path in (project / "outbox" / "new").iterdir():
        raw = path.read_bytes()
        found[email.message_from_bytes(raw, policy=default)["To"].addresses[0].addr_spec] = raw
    return found


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_each_subscriber_gets_their_language_and_name_from_one_render_per_locale(
    write_config: WriteConfig, project: Path, pem: bytes
) -> None:
    config = delivery_config(write_config, dkim=DKIM)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, 4)  # 000 and 002 chose en, 001 and 003 id
    code, out = kabar(config, "send", "harian", "--now", "--json")
    assert code == 0, out
    messages = delivered(project)
    assert len(messages) == 4
    for number, language in ((0, "en"), (1, "id"), (2, "en"), (3, "id")):
        raw = messages[f"pembaca{number:03d}@example.com"]
        assert dkim.verify(raw, dnsfunc=dns_for(pem))
        message = parse(raw)
        greeting = "Hello" if language == "en" else "Halo"
        assert f"{greeting}, Pembaca {number}!" in text_of(message)
        assert f"{greeting}, Pembaca {number}!" in html_of(message)
        assert f'lang="{language}"' in html_of(message)
        assert ("Unsubscribe" if language == "en" else "Berhenti berlangganan") in text_of(message)

    with Store.open(config.database_url) as store:
        (issue,) = Ledger(store.engine).issues(limit=1)
        stored = Ledger(store.engine).issue(issue.key)
    assert stored is not None and stored.prepared is not None
    # The site's language, and once more for the subscribers who chose English: two
    # renders for four subscribers, the same articles in both.
    assert stored.prepared["view"]["language"] == "id"
    variants = stored.prepared["variants"]
    assert [variant["language"] for variant in variants] == ["en"]
    assert [card["article_id"] for card in variants[0]["view"]["cards"]] == [
        card["article_id"] for card in stored.prepared["view"]["cards"]
    ]


def test_preview_of_a_subscriber_is_the_message_real_mail_sends_them(
    write_config: WriteConfig, project: Path, pem: bytes
) -> None:
    config = sent_to(write_config, 2)
    real = parse(delivered(project)["pembaca000@example.com"])
    out = project / "preview"
    code, output = kabar(
        config, "preview", "harian", "--subscriber", "pembaca000@example.com", "--out", str(out)
    )
    assert code == 0, output
    preview = parse((out / "issue.eml").read_bytes())

    assert preview.keys() == real.keys()  # the same headers, in the same order
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "To", "Subject", "From"):
        assert preview[name] == real[name], name
    assert "mailto:" not in preview["List-Unsubscribe"]
    assert "Hello, Pembaca 0!" in text_of(preview)
    links = set(re.findall(r'href="([^"]+/unsubscribe/[^"]+)"', html_of(preview)))
    assert links == set(re.findall(r'href="([^"]+/unsubscribe/[^"]+)"', html_of(real)))
    preferences = set(re.findall(r'href="([^"]+/preferences/[^"]+)"', html_of(preview)))
    assert preferences  # "Atur langganan" opens the preference centre
    assert preferences == set(re.findall(r'href="([^"]+/preferences/[^"]+)"', html_of(real)))
    assert dkim.verify((out / "issue.eml").read_bytes(), dnsfunc=dns_for(pem))


def test_preview_of_a_sample_subscriber_has_real_mails_headers(
    write_config: WriteConfig, project: Path, pem: bytes
) -> None:
    config = sent_to(write_config, 1)
    real = parse(next(iter(delivered(project).values())))
    out = project / "preview"
    code, output = kabar(config, "preview", "harian", "--out", str(out), "--json")
    assert code == 0, output
    assert json.loads(output)["notes"] == []
    preview = parse((out / "issue.eml").read_bytes())
    assert preview.keys() == real.keys()
    assert preview["List-Unsubscribe"].startswith("<https://kabar.example.id/unsubscribe/")
    assert "mailto:" not in preview["List-Unsubscribe"]
    assert "Halo, Pembaca!" in text_of(preview)
    assert "/preferences/preview." in html_of(preview)  # the sample subscriber's centre


def test_preview_for_an_address_not_on_the_list_says_it_is_a_sample(
    write_config: WriteConfig, project: Path, pem: bytes
) -> None:
    config = sent_to(write_config, 1)
    out = project / "preview"
    code, output = kabar(
        config, "preview", "harian", "--subscriber", "stranger@example.org", "--out", str(out),
        "--json",
    )  # fmt: skip
    assert code == 0, output
    [note] = json.loads(output)["notes"]
    assert note.startswith("stranger@example.org is not on list pembaca: this is a sample")
    assert parse((out / "issue.eml").read_bytes())["To"] == "stranger@example.org"


def sent_to(write_config: WriteConfig, subscribers: int) -> Config:
    """A signed digest config whose issue went to that many subscribers (`send --now`)."""
    config = delivery_config(write_config, dkim=DKIM)
    with Store.open(config.database_url) as store:
        prepare_store(config, store, subscribers)
    assert kabar(config, "send", "harian", "--now")[0] == 0
    return config
