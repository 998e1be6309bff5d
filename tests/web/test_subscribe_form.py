"""The subscribe form against hostile clients: one file and one Message-ID per
confirmation, limits per address and per client IP that hold across processes and
restarts, the Origin check, the honeypot, one answer whatever the address's state, and
re-joining only through a confirmation mail. Over real HTTP: the Starlette app through
httpx for the bulk, uvicorn on 127.0.0.1 for the flood."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import Config
from kabar.mails import Mails
from kabar.store import Store
from kabar.subscribers import Subscribers
from kabar.web import create_app

from ..support.delivery_setup import SECRET
from ..support.project import WriteConfig
from ..support.serving import free_port, uvicorn_thread

BASE = "https://kabar.example.id"
ORIGIN = {"Origin": BASE}
PROXY = "127.0.0.1"  # httpx's ASGI transport and uvicorn's clients both come from here


def make_config(
    write_config: WriteConfig,
    *,
    double_opt_in: bool = True,
    database_url: str = "sqlite:///var/kabar.db",
    **web: Any,
) -> Config:
    path = write_config(
        lists=[{"id": "pembaca", "name": "Pembaca", "double_opt_in": double_opt_in,
                "from": "Kabar Contoh <redaksi@kabar.example.id>"}],
        web={"base_url": BASE, **web},
        storage={"database": database_url, "feeds": "public/"},
    )  # fmt: skip
    return config_module.load(path)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


def post_all(
    config: Config, forms: list[dict[str, str]], headers: list[dict[str, str]] | None = None
) -> list[httpx.Response]:
    """POST /subscribe for each form, in order, through one app (one kabar serve)."""

    async def run(store: Store) -> list[httpx.Response]:
        app = create_app(config, store=store)
        transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return [
                await client.post("/subscribe", data=form, headers=extra)
                for form, extra in zip(forms, headers or [ORIGIN] * len(forms), strict=True)
            ]

    with Store.open(config.database_url) as store:
        return asyncio.run(run(store))


def post(
    config: Config, form: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    return post_all(config, [form], [ORIGIN if headers is None else headers])[0]


def outbox(project: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted((project / "outbox" / "new").iterdir())
    ]


def recipients(project: Path) -> list[str]:
    if not (project / "outbox" / "new").exists():
        return []
    return sorted(str(m["To"].addresses[0].addr_spec) for m in outbox(project))


def test_fifty_subscribers_get_fifty_confirmations(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = make_config(write_config, database_url=database_url,
                         subscribe_limits={"per_ip": 100})  # fmt: skip
    addresses = [f"pembaca{n:02d}@example.com" for n in range(50)]
    answers = post_all(config, [{"email": address} for address in addresses])
    assert {answer.status_code for answer in answers} == {200}
    messages = outbox(project)
    assert len(messages) == 50
    assert recipients(project) == addresses
    assert len({str(m["Message-ID"]) for m in messages}) == 50
    for message in messages:  # each link is its own subscriber's
        to = message["To"].addresses[0].addr_spec
        assert to in message.get_content()
    with Store.open(config.database_url) as store:
        recorded = list(Mails(store.engine).iter())
    assert sorted(m.email for m in recorded) == addresses
    assert {(m.kind, m.state, m.code) for m in recorded} == {("confirm", "sent", 250)}
    assert {m.message_id for m in recorded} == {str(m["Message-ID"]) for m in messages}


def test_the_answer_is_the_same_whatever_the_state(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config)
    with Store.open(config.database_url) as store:
        subscribers = Subscribers(store.engine)
        for state in ("pending", "active", "unsubscribed", "bounced", "complained"):
            found, _ = subscribers.add("pembaca", f"{state}@example.com", status="active")
            subscribers.set_status(found.id, state)  # type: ignore[arg-type]
    answers = {
        state: post(config, {"email": f"{state}@example.com"})
        for state in ("unknown", "pending", "active", "unsubscribed", "bounced", "complained")
    }
    shapes = {
        (answer.status_code, answer.text.replace(f"{state}@example.com", "ADDRESS"))
        for state, answer in answers.items()
    }
    assert len(shapes) == 1 and next(iter(shapes))[0] == 200


@pytest.mark.parametrize("left", ["unsubscribed", "bounced", "complained"])
def test_rejoining_without_double_opt_in_still_needs_the_confirmation(
    write_config: WriteConfig, project: Path, left: str
) -> None:
    config = make_config(write_config, double_opt_in=False)
    with Store.open(config.database_url) as store:
        subscribers = Subscribers(store.engine)
        gone, _ = subscribers.add("pembaca", "pergi@example.com")
        subscribers.set_status(gone.id, left)  # type: ignore[arg-type]
        assert post(config, {"email": "pergi@example.com"}).status_code == 200
        back = subscribers.get(gone.id)
        assert back is not None and back.status == "pending"
        assert recipients(project) == ["pergi@example.com"]
        # a new address on this list is taken at once, as before
        assert post(config, {"email": "baru@example.com"}).status_code == 200
        new = subscribers.find("pembaca", "baru@example.com")
        assert new is not None and new.status == "active"
    assert recipients(project) == ["pergi@example.com"]


def test_only_kabars_own_pages_may_post(write_config: WriteConfig, project: Path) -> None:
    config = make_config(write_config, allowed_origins=["https://Berita.Example.ORG:443/form"])
    refused = [
        {"Origin": "https://evil.example.net"},
        {"Origin": "null"},
        {"Origin": "https://kabar.example.id.evil.example.net"},
        {"Referer": "https://evil.example.net/kabar.example.id"},
        {"Origin": "http://kabar.example.id"},  # another scheme is another origin
        {},
    ]
    for headers in refused:
        answer = post(config, {"email": "korban@example.com"}, headers)
        assert answer.status_code == 403, headers
    accepted = [
        {"Origin": BASE},
        {"Referer": f"{BASE}/langganan?x=1"},
        {"Origin": "https://berita.example.org"},
    ]
    for n, headers in enumerate(accepted):
        assert post(config, {"email": f"teman{n}@example.com"}, headers).status_code == 200
    assert recipients(project) == [f"teman{n}@example.com" for n in range(3)]
    with Store.open(config.database_url) as store:
        assert Subscribers(store.engine).find("pembaca", "korban@example.com") is None


def test_a_filled_honeypot_is_answered_like_success_and_mails_nobody(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config)
    trap = post(config, {"email": "korban@example.com", "website": "http://spam.example"})
    real = post(config, {"email": "korban@example.com"})
    assert (trap.status_code, trap.text) == (real.status_code, real.text)
    assert recipients(project) == ["korban@example.com"]  # from the real one only


def test_nothing_typed_reaches_a_header_and_names_are_letters(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config, subscribe_limits={"per_ip": 100})
    names = {
        "a@example.com": ("Siti Nurhaliza", "Siti Nurhaliza"),
        "b@example.com": ("Zoë  Ñúñez\tÅsa", "Zoë Ñúñez Åsa"),
        "c@example.com": ("Menang hadiah di http://evil.example", ""),
        "d@example.com": ("Budi\r\nBcc: korban@example.com", ""),
        "e@example.com": ("A" * 61, ""),
        "f@example.com": ("=?utf-8?q?x?= <x@evil>", ""),
    }
    for address, (name, _) in names.items():
        assert post(config, {"email": address, "name": name}).status_code == 200
    with Store.open(config.database_url) as store:
        stored = {s.email: s.name for s in Subscribers(store.engine).iter("pembaca")}
    assert stored == {address: kept for address, (_, kept) in names.items()}
    for message in outbox(project):
        assert message["To"].addresses[0].display_name == ""
        assert message["Bcc"] is None and message["Cc"] is None
        assert "evil" not in message.as_string()


def test_per_address_limit_holds_across_clients_and_restarts(
    write_config: WriteConfig, project: Path, database_url: str
) -> None:
    config = make_config(write_config, database_url=database_url, trusted_proxies=[PROXY])
    form = {"email": "korban@example.com"}
    for run in range(2):  # a restart is a new app and a new connection pool
        answers = post_all(
            config,
            [form] * 10,
            [{**ORIGIN, "X-Forwarded-For": f"192.0.2.{run * 10 + n}"} for n in range(10)],
        )
        assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code,
                                                               answers[0].text)}  # fmt: skip
        assert answers[0].status_code == 200
    assert recipients(project) == ["korban@example.com"] * 3


def test_per_ip_limit_and_forwarded_for_only_from_trusted_proxies(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config, subscribe_limits={"per_ip": 5, "per_address": 100})
    # Not behind a trusted proxy: X-Forwarded-For is ignored, so rotating it gains nothing.
    answers = post_all(
        config,
        [{"email": f"x{n}@example.com"} for n in range(8)],
        [{**ORIGIN, "X-Forwarded-For": f"198.51.100.{n}"} for n in range(8)],
    )
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert int(answers[-1].headers["Retry-After"]) == 600
    assert len(recipients(project)) == 5


def test_client_ip_behind_trusted_proxies() -> None:
    from starlette.requests import Request

    from kabar.web.pages import Service, client_key

    def ip(service: Service, peer: str, forwarded: str) -> str:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        scope = {"type": "http", "client": (peer, 1), "headers": headers}
        return service.client_ip(Request(scope))

    config = Config.model_validate({
        "version": 1, "site": {"title": "t", "url": BASE},
        "web": {"trusted_proxies": ["10.0.0.0/8", "::1"]},
    })  # fmt: skip
    service = Service(config, None)
    assert ip(service, "203.0.113.5", "1.2.3.4") == "203.0.113.5"  # the peer is no proxy
    assert ip(service, "10.1.1.1", "1.2.3.4, 203.0.113.5") == "203.0.113.5"
    assert ip(service, "10.1.1.1", "1.2.3.4, 203.0.113.5, 10.2.2.2") == "203.0.113.5"
    assert ip(service, "::1", "") == "::1"
    assert client_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_key("203.0.113.5") == "203.0.113.5"


# --- the flood, over real HTTP ---------------------------------------------------------------


@pytest.fixture
def served(write_config: WriteConfig) -> Iterator[tuple[Config, str]]:
    """`kabar serve`'s app in uvicorn on a loopback port, behind a (pretend) local proxy."""
    config = make_config(write_config, trusted_proxies=[PROXY])
    # proxy_headers off, as `kabar serve`: kabar reads X-Forwarded-For itself.
    app = create_app(config)
    with uvicorn_thread(app, free_port(), log_level="error", proxy_headers=False) as base:
        yield config, base


def settled_recipients(project: Path, expected: int) -> list[str]:
    """The outbox's recipients once `expected` mails are there (uvicorn sends a
    confirmation after the answer), and a moment more for any that should not be."""
    deadline = time.monotonic() + 10
    while len(recipients(project)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return recipients(project)


FLOOD = 1500  # requests per wave; each wave takes a few seconds


def test_a_flood_at_one_address_mails_it_at_most_the_limit(
    served: tuple[Config, str], project: Path
) -> None:
    config, url = served
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    victim = {"email": "korban@example.com", "name": "x" * 200}
    started = time.monotonic()

    async def flood(headers: dict[str, str]) -> dict[int, int]:
        codes: dict[int, int] = {}
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

            async def one() -> None:
                answer = await client.post("/subscribe", data=victim, headers=headers)
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1

            for start in range(0, FLOOD, 50):
                await asyncio.gather(*(one() for _ in range(min(50, FLOOD - start))))
        return codes

    foreign = asyncio.run(flood({**attacker, "Origin": "https://evil.example.net"}))
    assert foreign == {403: FLOOD}
    assert settled_recipients(project, 0) == []
    spoofed = asyncio.run(flood({**attacker, "Origin": BASE}))
    assert spoofed == {200: 20, 429: FLOOD - 20}
    assert time.monotonic() - started < 60
    assert settled_recipients(project, 3) == ["korban@example.com"] * 3

    # Meanwhile a neighbour, from another address, still gets in.
    friend = httpx.post(
        f"{url}/subscribe",
        data={"email": "teman@example.com", "name": "Teman Baik"},
        headers={"Origin": BASE, "X-Forwarded-For": "198.51.100.7"},
    )
    assert friend.status_code == 200
    assert settled_recipients(project, 4) == ["korban@example.com"] * 3 + ["teman@example.com"]
    with Store.open(config.database_url) as store:
        victim_row = Subscribers(store.engine).find("pembaca", "korban@example.com")
    assert victim_row is not None and victim_row.name == ""


# --- the record of transactional mails, and the CLI ------------------------------------------


def test_a_failed_send_is_recorded_and_listed(write_config: WriteConfig, project: Path) -> None:
    port = free_port()  # nothing listens there
    path = write_config(
        lists=[{"id": "pembaca", "from": "Kabar Contoh <redaksi@kabar.example.id>"}],
        web={"base_url": BASE},
        delivery={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": port,
                  "starttls": False, "timeout": "2s"}},
    )  # fmt: skip
    config = config_module.load(path)
    assert post(config, {"email": "ani@example.com"}).status_code == 200
    assert post(make_config(write_config), {"email": "budi@example.com"}).status_code == 200

    runner = CliRunner()
    listed = runner.invoke(cli, ["-q", "-c", str(path), "subscribers", "mails", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [__import__("json").loads(line) for line in listed.stdout.splitlines()]
    assert [(r["email"], r["kind"], r["state"]) for r in rows] == [
        ("ani@example.com", "confirm", "failed"),
        ("budi@example.com", "confirm", "sent"),
    ]
    assert rows[0]["sent"] is None and rows[0]["code"] == 0 and rows[0]["error"]
    assert rows[1]["sent"] and rows[1]["code"] == 250 and rows[1]["message_id"].startswith("<")
    one = runner.invoke(cli, ["-q", "-c", str(path), "subscribers", "mails", "ANI@example.com"])
    assert one.exit_code == 0
    assert "ani@example.com" in one.stdout and "budi" not in one.stdout
    assert "failed" in one.stdout
    helped = runner.invoke(cli, ["subscribers", "mails", "--help"])
    assert "--json" in helped.stdout and "confirmation" in helped.stdout


def test_bad_web_settings_are_config_errors(write_config: WriteConfig) -> None:
    from kabar.config import ConfigError

    path = write_config(
        web={"allowed_origins": ["https://ok.example", "ftp://x"], "trusted_proxies": ["nope"],
             "subscribe_limits": {"per_address": 0, "ip_window": "soon", "typo": 1}},
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    problems = [problem.split(": ", 1)[1] for problem in caught.value.problems]
    assert problems == [
        "web.allowed_origins: not an http(s) origin: 'ftp://x'",
        "web.trusted_proxies: not an IP address or CIDR network: 'nope'",
        "web.subscribe_limits.per_address: Input should be greater than or equal to 1",
        "web.subscribe_limits.ip_window: expected a duration like 500ms, 90s, 10m, 24h, 30d or 2w, "
        "got 'soon'",
        "web.subscribe_limits.typo: unknown key 'typo'",
    ]
    config = make_config(write_config, allowed_origins=["HTTPS://Berita.example.org:443/"])
    assert config.web.allowed_origins == ["https://berita.example.org"]
    assert config.web.subscribe_limits.per_ip == 20


def test_over_the_limit_an_address_that_left_stays_as_it_was(
    write_config: WriteConfig, project: Path
) -> None:
    config = make_config(write_config, subscribe_limits={"per_address": 1})
    assert post(config, {"email": "pergi@example.com"}).status_code == 200
    with Store.open(config.database_url) as store:
        subscribers = Subscribers(store.engine)
        gone = subscribers.find("pembaca", "pergi@example.com")
        assert gone is not None
        subscribers.set_status(gone.id, "complained")
        assert post(config, {"email": "pergi@example.com"}).status_code == 200
        after = subscribers.get(gone.id)
    assert after is not None and after.status == "complained"
    assert recipients(project) == ["pergi@example.com"]  # the first request's only
