"""Unsubscribe (RFC 8058 one-click, a confirmation page for GET) and double opt-in
subscribe, over HTTP through the Starlette app."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette

from kabar.config import Config
from kabar.store import Store
from kabar.subscribers import Subscriber, Subscribers, sign
from kabar.web.subscribe import routes

from ..support.asgi import AsgiClient
from ..support.delivery_setup import SECRET, delivery_config, prepare_store, send_now
from ..support.project import WriteConfig

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def config(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    return delivery_config(write_config)


@pytest.fixture
def store(config: Config) -> Store:
    return Store.open(config.database_url)


@pytest.fixture
def client(config: Config, store: Store) -> AsgiClient:
    return AsgiClient(Starlette(routes=routes(config, store)))


@pytest.fixture
def subscriber(store: Store) -> Subscriber:
    return Subscribers(store.engine).add("pembaca", "budi@example.com", name="Budi")[0]


def status_of(store: Store, subscriber: Subscriber) -> str:
    found = Subscribers(store.engine).get(subscriber.id)
    assert found is not None
    return found.status


def path_for(subscriber: Subscriber, purpose: str = "unsubscribe") -> str:
    token = sign(SECRET.encode(), purpose, subscriber.id)  # type: ignore[arg-type]
    return f"/unsubscribe/{token}" if purpose == "unsubscribe" else f"/subscribe/confirm/{token}"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_with_200_and_no_redirect(
    client: AsgiClient, store: Store, subscriber: Subscriber, encoding: str
) -> None:
    if encoding == "urlencoded":
        response = client.post(path_for(subscriber), data=ONE_CLICK, follow_redirects=False)
    else:
        response = client.post(
            path_for(subscriber), files={"List-Unsubscribe": (None, "One-Click")},
            follow_redirects=False,
        )  # fmt: skip
    assert response.status_code == 200
    assert "location" not in response.headers
    assert status_of(store, subscriber) == "unsubscribed"
    assert client.post(path_for(subscriber), data=ONE_CLICK).status_code == 200  # idempotent


def test_get_only_asks_so_link_scanners_unsubscribe_nobody(
    client: AsgiClient, store: Store, subscriber: Subscriber
) -> None:
    for _ in range(3):
        page = client.get(path_for(subscriber))
        assert page.status_code == 200
    assert status_of(store, subscriber) == "active"
    assert 'method="post"' in page.text and "budi@example.com" in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert client.post(path_for(subscriber), data=ONE_CLICK).status_code == 200  # the button
    assert status_of(store, subscriber) == "unsubscribed"
    assert "tidak berlangganan" in client.get(path_for(subscriber)).text


def test_forged_and_tampered_tokens_get_4xx_and_change_nothing(
    client: AsgiClient, store: Store, subscriber: Subscriber
) -> None:
    genuine = path_for(subscriber)
    forged = [
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        f"/unsubscribe/{subscriber.id}",
        f"/unsubscribe/{sign(b'another secret', 'unsubscribe', subscriber.id)}",
        path_for(subscriber, "confirm").replace("/subscribe/confirm/", "/unsubscribe/"),
        "/unsubscribe/" + "x" * 200,
    ]
    for path in forged:
        assert client.get(path).status_code == 404, path
        assert client.post(path, data=ONE_CLICK).status_code == 404, path
    assert status_of(store, subscriber) == "active"
    # a genuine link without the one-click body changes nothing either
    assert client.post(genuine, data={"List-Unsubscribe": "yes"}).status_code == 400
    assert status_of(store, subscriber) == "active"


def test_the_link_in_a_sent_issue_unsubscribes(
    client: AsgiClient, config: Config, store: Store, project: Path
) -> None:
    prepare_store(config, store, 2)
    issue = send_now(config, store)
    assert issue is not None and issue.state == "sent"
    [first, _] = sorted((project / "outbox" / "new").iterdir())
    message = email.message_from_bytes(first.read_bytes(), policy=policy.default)
    header = str(message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = urlsplit(header.strip("<>").split(">")[0])
    assert (url.scheme, url.netloc) == ("https", "kabar.example.id")
    response = client.post(url.path, data=ONE_CLICK, follow_redirects=False)
    assert response.status_code == 200
    leaver = Subscribers(store.engine).find("pembaca", str(message["To"].addresses[0].addr_spec))
    assert leaver is not None and leaver.status == "unsubscribed"


def test_double_opt_in_mails_a_link_that_activates(
    client: AsgiClient, store: Store, project: Path
) -> None:
    form = {"email": "ani@example.com", "name": "Ani Lestari", "locale": "en"}
    response = client.post("/subscribe", data=form)
    assert response.status_code == 200 and "confirmation link" in response.text
    ani = Subscribers(store.engine).find("pembaca", "ani@example.com")
    assert ani is not None
    assert (ani.status, ani.name, ani.origin) == ("pending", "Ani Lestari", "web")

    [mail] = (project / "outbox" / "new").iterdir()
    message = email.message_from_bytes(mail.read_bytes(), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "ani@example.com"
    assert message["Subject"] == "Confirm your subscription to pembaca"
    body = message.get_content()
    link = next(line for line in body.splitlines() if "/subscribe/confirm/" in line)
    path = urlsplit(link.strip()).path

    page = client.get(path)  # a scanner fetching the link confirms nothing
    assert page.status_code == 200 and 'method="post"' in page.text
    assert status_of(store, ani) == "pending"
    assert client.post(path, data={"confirm": "yes"}).status_code == 200
    assert status_of(store, ani) == "active"
    assert client.get(path).status_code == 200  # a second visit just says so

    # asking again answers the same, and sends nothing new
    assert client.post("/subscribe", data=form).text == response.text
    assert len(list((project / "outbox" / "new").iterdir())) == 1


def test_subscribe_refuses_bad_input_clearly(client: AsgiClient, store: Store) -> None:
    bad = client.post("/subscribe", data={"email": "not an address"})
    assert bad.status_code == 400 and "tidak valid" in bad.text
    assert "must" not in bad.text  # the validator's English stays off the Indonesian page
    # Mail goes out without SMTPUTF8: a non-ASCII local part can't be delivered, and a
    # local part over 64 characters breaks RFC 5321.
    for address in ("ä@example.com", "ñandu@example.com", "x" * 65 + "@example.com"):
        assert client.post("/subscribe", data={"email": address}).status_code == 400, address
    assert (
        client.post("/subscribe", data={"email": "a@example.com", "list": "x"}).status_code == 400
    )
    assert Subscribers(store.engine).counts("pembaca")["pending"] == 0
    forged = client.post("/subscribe/confirm/0011223344556677.AAAAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status_code == 404


def test_pages_escape_what_they_show(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)
    path = write_config(
        lists=[{"id": "pembaca", "name": "Kabar <script>x</script> {{ 7*7 }}",
                "from": "Kabar <redaksi@kabar.example.id>", "double_opt_in": False}],
        web={"base_url": "https://kabar.example.id"},
    )  # fmt: skip
    from kabar import config as config_module

    config = config_module.load(path)
    with Store.open(config.database_url) as store:
        client = AsgiClient(Starlette(routes=routes(config, store)))
        response = client.post("/subscribe", data={"email": "o@example.com"})
        assert response.status_code == 200
        joined = Subscribers(store.engine).find("pembaca", "o@example.com")
        assert joined is not None and joined.status == "active"  # no opt-in on this list
        page = client.get(path_for(joined))
    assert "<script>x" not in page.text
    assert "Kabar &lt;script&gt;x&lt;/script&gt; {{ 7*7 }}" in page.text
