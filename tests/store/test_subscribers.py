"""Subscribers in the store: CSV import with every rejected row reported, the CLI, tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.store import Store
from kabar.subscribers import Subscribers, sign, verify

from ..support.project import WriteConfig

CSV = """\ufeffName,Email,Locale
Budi Santoso,budi@example.com,id
Jane Doe,Jane.Doe@Example.ORG,en-GB
,not-an-address,
Budi lagi,BUDI@example.com,
Siti,siti@example,id
Ana,ana@example.com,fr
"Tanda, Koma",koma@example.com,
Lama,lama@example.com,
"""


def invoke(config_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-q", "-c", str(config_path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_reports_every_rejected_row_and_keeps_the_rest(
    write_config: WriteConfig, project: Path
) -> None:
    path = write_config()
    with Store.open(config_module.load(path).database_url) as store:
        existing, _ = Subscribers(store.engine).add("pembaca", "lama@example.com")
        Subscribers(store.engine).set_status(existing.id, "unsubscribed")
    csv_path = project / "subscribers.csv"
    csv_path.write_text(CSV, encoding="utf-8")

    status, out, err = invoke(path, "subscribers", "import", str(csv_path))

    assert err.splitlines() == [
        f"{csv_path}:4: invalid address 'not-an-address': An email address must have an @-sign.",
        f"{csv_path}:5: duplicate of line 2: BUDI@example.com",
        f"{csv_path}:6: invalid address 'siti@example': The part after the @-sign is not valid. "
        "It should have a period.",
        f"{csv_path}:7: ana@example.com: unknown locale 'fr' (expected id or en)",
        f"{csv_path}:9: lama@example.com left list pembaca (unsubscribed): not re-activated "
        "(only its owner can re-join, by confirming)",
    ]
    assert out.strip() == (
        f"{csv_path}: 3 imported to list pembaca, 5 rejected "
        "(1 of them left the list and stay off it)"
    )
    assert status == 1
    _, listed, _ = invoke(path, "subscribers", "list", "--json")
    rows = [json.loads(line) for line in listed.splitlines()]
    assert [(r["email"], r["name"], r["locale"], r["status"]) for r in rows] == [
        ("budi@example.com", "Budi Santoso", "id", "active"),
        ("Jane.Doe@example.org", "Jane Doe", "en", "active"),  # the domain is normalised
        ("koma@example.com", "Tanda, Koma", "", "active"),
        ("lama@example.com", "", "", "unsubscribed"),  # an import never re-subscribes
    ]


def test_an_import_never_brings_back_who_left_and_says_so(
    write_config: WriteConfig, project: Path
) -> None:
    path = write_config()
    with Store.open(config_module.load(path).database_url) as store:
        subscribers = Subscribers(store.engine)
        for state in ("unsubscribed", "bounced", "complained", "pending", "active"):
            found, _ = subscribers.add("pembaca", f"{state}@example.com")
            subscribers.set_status(found.id, state)  # type: ignore[arg-type]
    csv_path = project / "again.csv"
    csv_path.write_text(
        "email\n" + "".join(f"{s}@example.com\n" for s in ("unsubscribed", "bounced",
        "complained", "pending", "active")) + "new@example.com\n", encoding="utf-8",
    )  # fmt: skip
    for status in ("active", "pending"):
        code, out, _ = invoke(path, "subscribers", "import", str(csv_path), "--json",
                              "--status", status)  # fmt: skip
        report = json.loads(out)
        assert code == 1
        assert [line.split(": ", 2)[1] for line in report["left"]] == [
            "unsubscribed@example.com left list pembaca (unsubscribed)",
            "bounced@example.com left list pembaca (bounced)",
            "complained@example.com left list pembaca (complained)",
        ]
        assert len(report["rejected"]) == (5 if status == "active" else 6)  # new is in now
    _, listed, _ = invoke(path, "subscribers", "list", "--json")
    assert {(r["email"], r["status"]) for r in map(json.loads, listed.splitlines())} == {
        ("unsubscribed@example.com", "unsubscribed"), ("bounced@example.com", "bounced"),
        ("complained@example.com", "complained"), ("pending@example.com", "pending"),
        ("active@example.com", "active"), ("new@example.com", "active"),
    }  # fmt: skip


def test_import_without_a_header_and_as_pending(write_config: WriteConfig, project: Path) -> None:
    path = write_config()
    plain = project / "plain.csv"
    plain.write_text("a@example.com,Ani\nB <b@example.com>\n\n", encoding="utf-8")
    status, out, _ = invoke(path, "subscribers", "import", str(plain), "--status", "pending")
    assert status == 0 and "2 imported" in out
    _, listed, _ = invoke(path, "subscribers", "list", "--status", "pending", "--json")
    assert [(r["email"], r["name"]) for r in map(json.loads, listed.splitlines())] == [
        ("a@example.com", "Ani"),
        ("b@example.com", "B"),
    ]


def test_add_list_and_remove(write_config: WriteConfig) -> None:
    path = write_config(
        lists=[
            {"id": "pembaca", "from": "Kabar <redaksi@kabar.example.id>"},
            {"id": "pagi", "from": "Kabar <pagi@kabar.example.id>"},
        ]
    )
    assert invoke(path, "subscribers", "add", "x@example.com")[0] == 2  # which list?
    code, out, _ = invoke(path, "subscribers", "add", "x@example.com", "--list", "pagi",
                          "--name", "Eks", "--locale", "id")  # fmt: skip
    assert (code, out.strip()) == (0, "added x@example.com to pagi (active)")
    code, out, _ = invoke(path, "subscribers", "add", "X@example.com", "--list", "pagi")
    assert (code, out.strip()) == (0, "x@example.com is already on pagi (active)")
    code, _, err = invoke(path, "subscribers", "add", "x@@example.com", "--list", "pagi")
    assert code == 2 and "x@@example.com" in err
    assert invoke(path, "subscribers", "add", "y@example.com", "--list", "nope")[0] == 2
    invoke(path, "subscribers", "add", "x@example.com", "--list", "pembaca")

    code, out, _ = invoke(path, "subscribers", "remove", "x@example.com", "--list", "pagi")
    assert (code, out.strip()) == (0, "unsubscribed x@example.com from pagi")
    code, out, _ = invoke(path, "subscribers", "list")
    assert out.split("\n")[0].split() == [
        "list", "email", "name", "locale", "status", "digests", "sections",
    ]  # fmt: skip
    assert [line.split()[-3] for line in out.strip().splitlines()[1:]] == [
        "unsubscribed",
        "active",
    ]
    code, out, _ = invoke(path, "subscribers", "remove", "x@example.com", "--list", "pembaca",
                          "--purge")  # fmt: skip
    assert out.strip() == "erased x@example.com from pembaca"
    assert invoke(path, "subscribers", "remove", "x@example.com", "--list", "pembaca")[0] == 1


def test_status_changes_and_counts(store: Store) -> None:
    subscribers = Subscribers(store.engine)
    one, _ = subscribers.add("pembaca", "one@example.com", status="pending")
    subscribers.add("pembaca", "two@example.com")
    assert not subscribers.set_status(one.id, "active", expected=["unsubscribed"])
    assert subscribers.set_status(one.id, "active", expected=["pending"])
    assert not subscribers.set_status(one.id, "active")  # already active: no change
    assert subscribers.set_status(one.id, "complained")
    assert subscribers.counts("pembaca") == {
        "pending": 0, "active": 1, "unsubscribed": 0, "bounced": 0, "complained": 1,
    }  # fmt: skip


def test_tokens_are_signed_per_subscriber_and_purpose() -> None:
    secret = b"k" * 32
    token = sign(secret, "unsubscribe", "0123456789abcdef")
    assert verify(secret, "unsubscribe", token) == "0123456789abcdef"
    assert verify(secret, "confirm", token) is None  # one purpose only
    assert verify(b"other secret", "unsubscribe", token) is None
    subscriber, mac = token.split(".")
    assert verify(secret, "unsubscribe", f"0123456789abcdee.{mac}") is None  # another id
    tampered = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert verify(secret, "unsubscribe", f"{subscriber}.{tampered}") is None
    assert verify(secret, "unsubscribe", subscriber) is None


@pytest.mark.parametrize(
    "bad",
    ["", "@", "a@b", "a b@example.com", "a@example..com", "ä@example.com", "x" * 65 + "@k.id"],
)
def test_invalid_addresses_are_refused(store: Store, bad: str) -> None:
    from kabar.addresses import InvalidAddress

    with pytest.raises(InvalidAddress):
        Subscribers(store.engine).add("pembaca", bad)


def test_an_international_domain_is_kept_in_ascii(store: Store) -> None:
    """So the To: header and the SMTP envelope carry punycode, never an encoded word."""
    subscriber, _ = Subscribers(store.engine).add("pembaca", "Budi@Exämple.com")
    assert subscriber.email == "Budi@xn--exmple-cua.com"
