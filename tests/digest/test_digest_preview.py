"""`kabar preview`: the next issue as files; the .eml parses and its DKIM signature verifies."""

from __future__ import annotations

import email
import json
from email.policy import default
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from kabar.cli import cli
from kabar.store import Store

from ..support.digest import DIGEST, dns_for, make_article, rsa_key_pem
from ..support.project import SEED_AS_OF, WriteConfig

DKIM = {"domain": "kabar.example.id", "selector": "k1", "key_env": "KABAR_DKIM_KEY"}


def _config(write_config: WriteConfig, project: Path, **digest: object) -> Path:
    broken = {**DIGEST, "id": "broken", "templates": {"html": "tpl/missing.mjml.j2"}}
    return write_config(
        storage={"database": f"sqlite:///{project / 'var' / 'kabar.db'}", "feeds": "public/"},
        digests=[{**DIGEST, **digest}, broken],
        delivery={"transport": "outbox", "outbox": "outbox/", "dkim": DKIM},
    )


def _invoke(*args: str, env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_preview_writes_the_three_files_and_the_eml_verifies(
    write_config: WriteConfig, project: Path
) -> None:
    path = _config(write_config, project)
    ingested = _invoke("-c", str(path), "ingest", "--as-of", "2024-05-01T12:00+07:00")
    assert ingested.exit_code == 0  # type: ignore[attr-defined]
    pem = rsa_key_pem()
    out = project / "out"
    result = _invoke(
        "-c", str(path), "preview", "harian", "--as-of", "2024-05-01T12:00+07:00",
        "--out", str(out), "--subscriber", "siti@example.com", "--json",
        env={"KABAR_DKIM_KEY": pem.decode()},
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    summary = json.loads(result.output)  # type: ignore[attr-defined]
    assert summary["signed"] is True and summary["articles"] == 10
    assert sorted(p.name for p in out.iterdir()) == ["issue.eml", "issue.html", "issue.txt"]

    raw = (out / "issue.eml").read_bytes()
    assert dkim.verify(raw, dnsfunc=dns_for(pem))
    assert not dkim.verify(raw.replace(b"Kabar pagi", b"Kabar sore"), dnsfunc=dns_for(pem))
    message = email.message_from_bytes(raw, policy=default)
    assert message["To"] == "siti@example.com"
    assert message["Subject"] == "Kabar pagi, 1 Mei 2024"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == (out / "issue.txt").read_text().rstrip("\n")
    assert "https://kabar.example.id/unsubscribe/preview." in text
    assert "https://kabar.example.id/preferences/preview." in text
    assert "mailto:" not in message["List-Unsubscribe"]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.replace("\r\n", "\n") == (out / "issue.html").read_text().rstrip("\n")

    # Nothing was sent or recorded: no outbox, the store holds what ingest put there.
    assert not (project / "outbox").exists()
    with Store.open(f"sqlite:///{project / 'var' / 'kabar.db'}") as store:
        assert store.count() == 11


def test_preview_without_the_dkim_key_says_it_is_unsigned(
    write_config: WriteConfig, project: Path
) -> None:
    path = _config(write_config, project)
    _invoke("-c", str(path), "ingest", "--as-of", "2024-05-01T12:00+07:00")
    result = _invoke("-c", str(path), "preview", "harian", "--as-of", "2024-05-01T12:00+07:00")
    assert result.exit_code == 0  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert (
        "harian: 10 articles" in output and "not DKIM-signed: KABAR_DKIM_KEY is not set" in output
    )
    written = project / "var" / "preview" / "harian" / "issue.eml"
    assert f"wrote {written}" in output
    assert b"DKIM-Signature" not in written.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["preview", "weekly"], "DIGEST: unknown digest id 'weekly' (configured: harian, broken)"),
        (["preview", "harian", "--as-of", "2030-01-01T07:00+07:00"], "no new articles"),
        (["preview", "harian", "--subscriber", "not an address"], "not a usable email address"),
        (["preview", "broken"], "tpl/missing.mjml.j2' not found"),
    ],
)
def test_preview_problems_are_reported_plainly(
    write_config: WriteConfig, project: Path, args: list[str], message: str
) -> None:
    path = _config(write_config, project, skip_if_empty=True)
    _invoke("-c", str(path), "ingest", "--as-of", "2024-05-01T12:00+07:00")
    if "--as-of" not in args:
        args = [*args, "--as-of", "2024-05-01T12:00+07:00"]
    result = CliRunner().invoke(cli, ["-c", str(path), *args])
    assert message in result.output
    assert "Traceback" not in result.output


def _title(number: int) -> str:
    return f"Judul panjang nomor {number}: " + "kata demi kata " * 18 + "selesai"


def test_preview_of_an_issue_past_gmails_clip_limit_names_what_it_left_out(
    write_config: WriteConfig, project: Path
) -> None:
    path = _config(write_config, project, max_items=50, window="3d")
    # 50 long cards, one with a 100,000-character title: far past 100 KB.
    with Store.open(f"sqlite:///{project / 'var' / 'kabar.db'}") as store:
        store.upsert([
            make_article(n, when=SEED_AS_OF, title="Banjir " * 15_000 if n == 2 else _title(n),
                         summary="Kalimat ringkasan yang cukup panjang untuk sebuah berita. " * 30)
            for n in range(1, 51)
        ])  # fmt: skip
    out = project / "out"
    args = ["-c", str(path), "preview", "harian", "--as-of", "2024-05-01T12:00+07:00"]
    result = _invoke(*args, "--out", str(out), "--json")
    summary = json.loads(result.stdout)  # type: ignore[attr-defined]
    html = (out / "issue.html").read_bytes()
    assert summary["html_bytes"] == len(html) < 100_000
    assert "Berhenti berlangganan" in html.decode()  # the footer is inside Gmail's clip
    kept, dropped = summary["articles"], summary["dropped"]
    assert 10 <= kept < 50 and len(dropped) == 50 - kept
    # Dropped from the end: the issue lists the newest (hour 1) first, so the oldest went.
    assert dropped == [_title(n) for n in range(kept + 1, 51)]
    for title in dropped:
        assert title.encode() not in html
    text = _invoke(*args, "--out", str(out)).stdout  # type: ignore[attr-defined]
    assert f"left out so the HTML stays under Gmail's clip limit ({len(dropped)}):" in text
    assert f"  - {dropped[-1]}" in text


def test_preview_json_is_json_on_errors_too_and_old_files_go(
    write_config: WriteConfig, project: Path
) -> None:
    path = _config(write_config, project)
    _invoke("-c", str(path), "ingest", "--as-of", "2024-05-01T12:00+07:00")
    out = project / "out"
    base = ["-c", str(path), "preview", "harian", "--out", str(out), "--json"]
    assert _invoke(*base, "--as-of", "2024-05-01T12:00+07:00").exit_code == 0  # type: ignore[attr-defined]
    assert sorted(p.name for p in out.iterdir()) == ["issue.eml", "issue.html", "issue.txt"]

    # A later time with nothing new: no issue, so yesterday's files must not look current.
    result = CliRunner().invoke(cli, [*base, "--as-of", "2030-01-01T07:00+07:00"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "digest": "harian", "issue_key": None, "articles": 0, "files": []
    }  # fmt: skip
    assert list(out.iterdir()) == []

    for args, message in [
        (["--as-of", "garbage"], "--as-of: cannot read 'garbage' as an ISO 8601 time"),
        (["--as-of", "2024-05-01T12:00+07:00", "--subscriber", "nope"], "not a usable email"),
    ]:
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 2
        answer = json.loads(result.stdout)
        assert answer["digest"] == "harian" and message in answer["error"]
    result = CliRunner().invoke(cli, ["-c", str(path), "preview", "weekly", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"].startswith("DIGEST: unknown digest id 'weekly'")
