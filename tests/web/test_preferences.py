"""The subscriber's side below the browser: the form kabar serves and its token, the
preference centre's tokens and recorded changes, consent records, export and forget,
per-subscriber digests and sections in the ledger, and the admin's view. Over real HTTP
through the Starlette app (httpx), with SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from kabar import config as config_module
from kabar.cli import cli
from kabar.config import Config
from kabar.consent import Consent
from kabar.deliver.send import utcnow
from kabar.ledger import Ledger
from kabar.mails import Mails
from kabar.store import Store
from kabar.store.tables import subscriber_events
from kabar.subscribers import Links, Subscribers, sign
from kabar.web import create_app, forms

from ..support.delivery_setup import SECRET, send_now
from ..support.digest import make_article
from ..support.project import WriteConfig

BASE = "https://kabar.example.id"
CLIENT = ("198.51.100.7", 40000)
SECTIONS = ("Nasional", "Ekonomi", "Olahraga")
UA = {"User-Agent": "Pembaca/1.0"}


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


def site_config(write_config: WriteConfig, database_url: str, **list_extra: Any) -> Config:
    digest = {
        "id": "harian", "list": "pembaca", "subject": "Kabar pagi, {date}", "window": "30d",
        "related": {"per_item": 0}, "skip_if_empty": True,
    }  # fmt: skip
    path = write_config(
        lists=[{"id": "pembaca", "name": "Kabar Pembaca",
                "from": "Kabar Contoh <redaksi@kabar.example.id>", **list_extra}],
        digests=[digest, {**digest, "id": "mingguan", "window": "7d"}],
        web={"base_url": BASE},
        storage={"database": database_url, "feeds": "public/"},
    )  # fmt: skip
    return config_module.load(path)


@pytest.fixture
def config(write_config: WriteConfig, database_url: str) -> Config:
    config = site_config(write_config, database_url)
    with Store.open(config.database_url) as store:
        store.upsert([
            make_article(n, when=utcnow(), section=section, title=f"Berita {section} {n}")
            for n, section in ((n, SECTIONS[n % 2]) for n in range(1, 7))  # no Olahraga
        ])  # fmt: skip
    return config


Step = Callable[[httpx.AsyncClient], Any]


def browse(config: Config, *steps: Step, client: tuple[str, int] = CLIENT) -> list[Any]:
    """Run each step against one app (one `kabar serve`), from one client address."""

    async def run(store: Store) -> list[Any]:
        app = create_app(config, store=store)
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            return [await step(http) for step in steps]

    with Store.open(config.database_url) as store:
        return asyncio.run(run(store))


def get(path: str, **headers: str) -> Step:
    return lambda http: http.get(path, headers=headers)


def post(path: str, data: dict[str, Any], **headers: str) -> Step:
    return lambda http: http.post(path, data=data, headers={**UA, **headers})


def token_of(page: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, "the form carries no token"
    return found.group(1)


def links(config: Config) -> Links:
    return Links(config, SECRET.encode())


def kabar(config: Config, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-q", "-c", str(config.path), *args])
    return result.exit_code, result.stdout, result.stderr


# --- the form ---------------------------------------------------------------------------------


def test_the_form_labels_every_field_in_the_readers_language(config: Config) -> None:
    indonesian, english, asked = browse(
        config,
        get("/subscribe", **{"Accept-Language": "id-ID,id;q=0.9"}),
        get("/subscribe?lang=en", **{"Accept-Language": "id"}),
        get("/subscribe", **{"Accept-Language": "fr, en;q=0.5"}),
    )
    assert indonesian.status_code == 200 and '<html lang="id">' in indonesian.text
    assert "Alamat email" in indonesian.text and 'href="?lang=en"' in indonesian.text
    assert '<html lang="en">' in english.text and "Email address" in english.text
    assert '<html lang="en">' in asked.text
    page = indonesian.text
    for ident in re.findall(r'<input type="(?:email|text|checkbox|radio)" id="([^"]+)"', page):
        assert f'<label for="{ident}">' in page, ident
    for section in SECTIONS[:2]:
        assert f'value="{section}"' in page  # sections from the stored articles
    assert 'value="harian"' in page and 'value="mingguan"' in page
    assert "<script" not in page
    assert "style-src 'sha256-" in indonesian.headers["content-security-policy"]


def test_the_forms_own_token_stands_in_for_an_origin(config: Config) -> None:
    """kabar's pages send no Referer, so a browser posts them with `Origin: null`: a
    token from the form served to the same client lets that post in; without one, or
    with another client's, altered or stale one, nothing is stored."""
    form = {"email": "sari@example.com", "name": "Sari", "digest": "harian",
            "section": ["Ekonomi", "<b>Hack</b>"], "locale": "en"}  # fmt: skip
    secret = SECRET.encode()
    stale = forms.form_token(secret, CLIENT[0], now=time.time() - 2 * 86400)
    other = forms.form_token(secret, "203.0.113.9")

    async def with_token(http: httpx.AsyncClient) -> httpx.Response:
        page = await http.get("/subscribe")
        token = token_of(page.text)
        refused = [
            await http.post("/subscribe", data={**form, "form_token": bad},
                            headers={"Origin": "null"})
            for bad in ("", token[:-2] + "xx", stale, other)
        ]  # fmt: skip
        assert [r.status_code for r in refused] == [403] * 4
        assert Subscribers(store_engine(config)).find("pembaca", "sari@example.com") is None
        return await http.post(
            "/subscribe", data={**form, "form_token": token}, headers={"Origin": "null", **UA}
        )

    (answer,) = browse(config, with_token)
    assert answer.status_code == 200
    subscriber = Subscribers(store_engine(config)).find("pembaca", "sari@example.com")
    assert subscriber is not None and subscriber.status == "pending"
    assert subscriber.digests == ("harian",)
    assert subscriber.sections == ("Ekonomi",)  # what was not offered is not stored
    assert subscriber.consent is not None
    assert subscriber.consent["origin"] == "form"
    assert subscriber.consent["ip"] == CLIENT[0]
    assert subscriber.consent["user_agent"] == "Pembaca/1.0"
    assert subscriber.consent["language"] == "en"
    assert subscriber.consent["confirmed_at"] is None


OPENED: list[Store] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def opened(config: Config) -> Store:
    store = Store.open(config.database_url)
    OPENED.append(store)
    return store


def store_engine(config: Config) -> Any:
    return opened(config).engine


def test_confirming_records_where_from_and_sends_the_welcome_mail(
    write_config: WriteConfig, database_url: str, project: Path
) -> None:
    config = site_config(write_config, database_url, welcome=True)
    (answer,) = browse(
        config, post("/subscribe", {"email": "budi@example.com", "name": "Budi"}, Origin=BASE)
    )
    assert answer.status_code == 200
    engine = store_engine(config)
    subscriber = Subscribers(engine).find("pembaca", "budi@example.com")
    assert subscriber is not None
    confirm = links(config).confirm_url(subscriber.id).removeprefix(BASE)
    (page,) = browse(config, post(confirm, {"confirm": "yes"}), client=("192.0.2.44", 5000))
    assert page.status_code == 200
    after = Subscribers(engine).get(subscriber.id)
    assert after is not None and after.status == "active" and after.consent is not None
    assert after.consent["confirmed_ip"] == "192.0.2.44"
    assert after.consent["confirmed_user_agent"] == "Pembaca/1.0"
    assert after.consent["ip"] == CLIENT[0]  # where it was asked for stays
    kinds = [mail.kind for mail in Mails(engine).iter(email="budi@example.com")]
    assert kinds == ["confirm", "welcome"]
    welcome = [p for p in (project / "outbox" / "new").iterdir() if b"Selamat datang" in
               p.read_bytes()]  # fmt: skip
    assert len(welcome) == 1
    text = welcome[0].read_bytes().decode()
    assert "Halo, Budi!" in text and "/preferences/" in text
    assert "Terima kasih telah berlangganan Kabar Pembaca dari Kabar Contoh" in text


# --- the preference centre --------------------------------------------------------------------


def active(config: Config, email: str = "rina@example.com", **choices: Any) -> str:
    subscriber, _ = Subscribers(store_engine(config)).add("pembaca", email, **choices)
    return subscriber.id


def test_a_forged_or_altered_preferences_token_gets_404(config: Config) -> None:
    subscriber_id = active(config)
    good = links(config).preferences_url(subscriber_id).removeprefix(BASE)
    unsubscribe_token = sign(SECRET.encode(), "unsubscribe", subscriber_id)
    pages = browse(
        config,
        get(good),
        get(good[:-3] + "abc"),
        get(f"/preferences/{unsubscribe_token}"),  # another purpose's token
        get(f"/preferences/{sign(b'another key', 'preferences', subscriber_id)}"),
        get(f"/preferences/{unsubscribe_token}/export"),
        post(good[:-3] + "abc", {"action": "leave"}, Origin=BASE),
    )
    assert [page.status_code for page in pages] == [200, 404, 404, 404, 404, 404]
    assert Subscribers(store_engine(config)).get(subscriber_id).status == "active"  # type: ignore[union-attr]


def test_every_change_in_the_preference_centre_is_recorded(config: Config) -> None:
    subscriber_id = active(config, name="Rina")
    path = links(config).preferences_url(subscriber_id).removeprefix(BASE)

    async def change(http: httpx.AsyncClient) -> httpx.Response:
        page = await http.get(path)
        data = {
            "action": "save",
            "form_token": token_of(page.text),
            "name": "Rina Wati",
            "list": "pembaca",
            "digest": "mingguan",
            "section": "Ekonomi",
            "locale": "en",
        }
        return await http.post(path, data=data, headers={"Origin": "null", **UA})  # fmt: skip

    (saved,) = browse(config, change)
    assert saved.status_code == 200 and "Your choices are saved" in saved.text
    engine = store_engine(config)
    after = Subscribers(engine).get(subscriber_id)
    assert after is not None
    assert (after.name, after.locale, after.digests, after.sections) == (
        "Rina Wati", "en", ("mingguan",), ("Ekonomi",),
    )  # fmt: skip
    (event,) = Consent(engine).events(subscriber_id)
    assert event["kind"] == "changed" and event["ip"] == CLIENT[0]
    assert event["user_agent"] == "Pembaca/1.0"
    assert event["detail"]["name"] == ["Rina", "Rina Wati"]
    assert event["detail"]["sections"] == ["", '["Ekonomi"]']

    # Without the form's token (or an allowed Origin) a post changes nothing.
    (refused,) = browse(config, post(path, {"action": "leave"}, Origin="https://evil.example"))
    assert refused.status_code == 403
    assert Subscribers(engine).get(subscriber_id).status == "active"  # type: ignore[union-attr]

    async def leave(http: httpx.AsyncClient) -> httpx.Response:
        page = await http.get(path)
        data = {"action": "leave", "form_token": token_of(page.text)}
        return await http.post(path, data=data, headers={"Origin": "null", **UA})

    (left,) = browse(config, leave)
    assert left.status_code == 200
    assert Subscribers(engine).get(subscriber_id).status == "unsubscribed"  # type: ignore[union-attr]
    with engine.connect() as connection:
        kinds = [row.kind for row in connection.execute(subscriber_events.select())]
    assert kinds == ["changed", "changed"]


def test_the_download_is_the_admins_export(config: Config) -> None:
    subscriber_id = active(config)
    path = links(config).preferences_url(subscriber_id).removeprefix(BASE) + "/export"
    (download,) = browse(config, get(path))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert "attachment" in download.headers["content-disposition"]
    mine = download.json()
    code, out, _ = kabar(config, "subscribers", "export", "rina@example.com")
    assert code == 0
    admins = json.loads(out)
    for data in (mine, admins):
        data.pop("exported")
    assert mine == admins
    assert mine["subscriptions"][0]["consent"]["origin"] == "admin"


# --- consent and data rights ------------------------------------------------------------------


def test_forget_keeps_only_a_hash_and_an_import_does_not_bring_them_back(
    config: Config, project: Path
) -> None:
    subscriber_id = active(config, email="Lupa@Example.com")
    engine = store_engine(config)
    Consent(engine).record(subscriber_id, "changed", {"name": ["", "Lupa"]})
    code, out, _ = kabar(config, "subscribers", "forget", "lupa@example.com")
    assert code == 0 and "erased 1" in out
    assert list(Subscribers(engine).iter()) == []
    assert Consent(engine).is_forgotten("LUPA@example.com")
    with engine.connect() as connection:
        assert connection.execute(subscriber_events.select()).all() == []
    assert kabar(config, "subscribers", "show", "lupa@example.com")[0] == 1

    csv = project / "impor.csv"
    csv.write_text("email\nlupa@example.com\nbaru@example.com\n", encoding="utf-8")
    code, out, err = kabar(config, "subscribers", "import", str(csv))
    assert code == 1 and "forgotten" in err
    assert [s.email for s in Subscribers(engine).iter()] == ["baru@example.com"]
    imported = Subscribers(engine).find("pembaca", "baru@example.com")
    assert imported is not None and imported.consent is not None
    assert imported.consent["origin"] == "import" and imported.consent["source"] == str(csv)

    (answer,) = browse(config, post("/subscribe", {"email": "lupa@example.com"}, Origin=BASE))
    assert answer.status_code == 200  # they can still come back themselves
    back = Subscribers(engine).find("pembaca", "lupa@example.com")
    assert back is not None and back.status == "pending"


def test_show_prints_the_consent_record(config: Config) -> None:
    browse(config, post("/subscribe", {"email": "tia@example.com", "locale": "id"}, Origin=BASE))
    code, out, _ = kabar(config, "subscribers", "show", "tia@example.com", "--json")
    assert code == 0
    (record,) = json.loads(out)["subscriptions"]
    assert record["status"] == "pending"
    assert record["consent"]["origin"] == "form" and record["consent"]["ip"] == CLIENT[0]
    code, out, _ = kabar(config, "subscribers", "show", "tia@example.com")
    assert "consent.origin: form" in out and f"consent.ip: {CLIENT[0]}" in out


# --- sections and digests per subscriber -----------------------------------------------------


def test_sections_and_digests_per_subscriber_are_rendered_once_per_variant(
    config: Config, project: Path
) -> None:
    engine = store_engine(config)
    people = Subscribers(engine)
    people.add("pembaca", "semua@example.com")
    people.add("pembaca", "semua2@example.com")
    people.add("pembaca", "ekonomi@example.com", sections=["Ekonomi"], locale="en")
    people.add("pembaca", "ekonomi2@example.com", sections=["ekonomi"], locale="en")
    people.add("pembaca", "olahraga@example.com", sections=["Olahraga"])  # nothing today
    people.add("pembaca", "mingguan@example.com", digests=["mingguan"])

    issue = send_now(config, opened(config))
    assert issue is not None and issue.state == "sent"
    ledger = Ledger(engine)
    counts = ledger.counts([issue.key])[issue.key]
    assert counts.audience == 5  # the weekly-only reader is outside the daily's audience
    assert (counts.sent, counts.skipped) == (4, 1)  # Olahraga has nothing: skipped
    variants = ledger.variants(issue.key)
    assert len(variants) == 3 and variants["id/all"] == 2
    assert sorted(variants.values()) == [1, 2, 2]
    stored = ledger.issue(issue.key)
    assert stored is not None and stored.prepared is not None
    assert len(stored.prepared["variants"]) == 2  # en+Ekonomi, id+Olahraga; never per person

    mails = {
        path.read_bytes().split(b"\r\nTo: ")[1].split(b"\r\n")[0].decode(): path.read_bytes()
        for path in (project / "outbox" / "new").iterdir()
    }
    assert sorted(mails) == [
        "ekonomi2@example.com", "ekonomi@example.com", "semua2@example.com", "semua@example.com",
    ]  # fmt: skip
    assert b"Berita Nasional" in mails["semua@example.com"]
    assert b"Berita Nasional" not in mails["ekonomi@example.com"]
    assert b"Berita Ekonomi" in mails["ekonomi@example.com"]
    assert b"Manage" in mails["ekonomi@example.com"]  # English

    code, out, _ = kabar(config, "status", "--json")
    assert code == 0
    row = json.loads(out.splitlines()[0])
    assert row["variants"] == variants and row["audience"] == 5
    code, out, _ = kabar(config, "status")
    assert "3: " in out and "id/all 2" in out


def test_list_filters_by_digest_section_and_language(config: Config) -> None:
    engine = store_engine(config)
    people = Subscribers(engine)
    people.add("pembaca", "a@example.com", sections=["Ekonomi"], locale="en")
    people.add("pembaca", "b@example.com", digests=["mingguan"], locale="id")
    people.add("pembaca", "c@example.com", status="pending")

    def emails(*args: str) -> list[str]:
        code, out, _ = kabar(config, "subscribers", "list", "--json", *args)
        assert code == 0
        return [json.loads(line)["email"] for line in out.splitlines()]

    assert emails("--digest", "harian") == ["a@example.com", "c@example.com"]
    assert emails("--digest", "mingguan") == ["a@example.com", "b@example.com", "c@example.com"]
    assert emails("--section", "ekonomi") == ["a@example.com"]
    assert emails("--language", "id") == ["b@example.com"]
    assert emails("--status", "pending", "--digest", "harian") == ["c@example.com"]
    assert kabar(config, "subscribers", "list", "--digest", "nope")[0] == 2


def test_a_subscriber_who_joined_after_rendering_gets_their_languages_issue(
    config: Config,
) -> None:
    """The variant lookup falls back: a choice of sections not rendered in their language
    gets every section in their language; a language not rendered gets the issue's own,
    with their sections if that was rendered."""
    from kabar.digest import prepare_issue

    store = opened(config)
    issue = prepare_issue(
        config, store, config.digest("harian"), issue_key="harian:pembaca:x",
        issue_time=utcnow() + timedelta(seconds=1), choices=[("en", ()), ("id", ("Ekonomi",))],
    )  # fmt: skip
    assert issue is not None
    assert issue.route("en", ("Nasional",))[0] == "en/all"
    assert issue.route("fr", ())[0] == "id/all"
    key, has_articles = issue.route("id", ("Ekonomi",))
    assert key.startswith("id/") and key != "id/all" and has_articles
    assert issue.route("fr", ("Ekonomi",))[0] == key  # their sections, in the issue's language


def test_a_preview_of_a_subscriber_shows_their_sections(config: Config, tmp_path: Path) -> None:
    people = Subscribers(store_engine(config))
    people.add("pembaca", "ekonomi@example.com", sections=["Ekonomi"], locale="en")
    out = tmp_path / "preview"
    code, _, err = kabar(
        config, "preview", "harian", "--subscriber", "ekonomi@example.com", "--out", str(out)
    )
    assert code == 0, err
    text = (out / "issue.txt").read_text()
    assert "Berita Ekonomi" in text and "Berita Nasional" not in text
    assert "Unsubscribe" in text  # in their language


def test_leaving_by_the_unsubscribe_link_is_recorded(config: Config) -> None:
    subscriber_id = active(config)
    path = links(config).unsubscribe_url(subscriber_id).removeprefix(BASE)
    (page,) = browse(config, post(path, {"List-Unsubscribe": "One-Click"}))
    assert page.status_code == 200
    (event,) = Consent(store_engine(config)).events(subscriber_id)
    assert event["detail"] == {"status": ["active", "unsubscribed"]}
    assert (event["ip"], event["user_agent"]) == (CLIENT[0], "Pembaca/1.0")


def test_a_site_with_two_lists_offers_both_and_confirms_each(
    write_config: WriteConfig, database_url: str, project: Path
) -> None:
    path = write_config(
        lists=[
            {"id": "pembaca", "name": "Kabar Pembaca", "from": "Kabar <redaksi@kabar.example.id>"},
            {"id": "sore", "name": "Kabar Sore", "from": "Kabar <sore@kabar.example.id>"},
        ],
        digests=[
            {"id": "harian", "list": "pembaca", "subject": "Pagi"},
            {"id": "petang", "list": "sore", "subject": "Sore"},
        ],
        web={"base_url": BASE},
        storage={"database": database_url, "feeds": "public/"},
    )
    config = config_module.load(path)

    async def join_both(http: httpx.AsyncClient) -> httpx.Response:
        page = await http.get("/subscribe?lang=id")
        assert 'id="list-pembaca"' in page.text and 'id="list-sore"' in page.text
        data = {"email": "dua@example.com", "list": ["pembaca", "sore"],
                "form_token": token_of(page.text)}  # fmt: skip
        return await http.post("/subscribe", data=data, headers={"Origin": "null"})

    (answer,) = browse(config, join_both)
    assert answer.status_code == 200
    engine = store_engine(config)
    rows = sorted((s.list_id, s.status) for s in Subscribers(engine).iter())
    assert rows == [("pembaca", "pending"), ("sore", "pending")]
    deadline = time.monotonic() + 5
    while len(list(Mails(engine).iter(email="dua@example.com"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sorted(m.list_id for m in Mails(engine).iter()) == ["pembaca", "sore"]


def test_the_readmes_embeddable_form_posts_from_an_allowed_origin(
    write_config: WriteConfig, database_url: str
) -> None:
    """The snippet's own fields, posted from the publisher's page (web.allowed_origins)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("```html\n", 1)[1].split("```", 1)[0]
    fields = {  # what a browser sends: the hidden fields and the ticked boxes
        name: value
        for tag in re.findall(r"<input [^>]+>", snippet)
        if 'type="hidden"' in tag or " checked" in tag
        for name, value in re.findall(r'name="(\w+)" value="([^"]+)"', tag)
    }
    assert fields == {"list": "pembaca", "digest": "mingguan", "section": "Ekonomi", "locale": "id"}
    path = write_config(
        lists=[{"id": "pembaca", "from": "Kabar <redaksi@kabar.example.id>"}],
        digests=[{"id": "harian", "list": "pembaca", "subject": "Pagi", "sections": ["Nasional"]},
                 {"id": "mingguan", "list": "pembaca", "subject": "Pekan",
                  "sections": ["Ekonomi"]}],
        web={"base_url": BASE, "allowed_origins": ["https://berita.example.com"]},
        storage={"database": database_url, "feeds": "public/"},
    )  # fmt: skip
    config = config_module.load(path)
    data = {**fields, "email": "tamu@example.com", "name": "Tamu", "website": ""}
    answers = browse(
        config,
        post("/subscribe", data, Origin="https://berita.example.com"),
        post("/subscribe", {**data, "email": "lain@example.com"}, Origin="https://evil.example"),
    )
    assert [a.status_code for a in answers] == [200, 403]
    (joined,) = Subscribers(store_engine(config)).iter()
    assert (joined.email, joined.digests, joined.sections, joined.locale) == (
        "tamu@example.com", ("mingguan",), ("Ekonomi",), "id",
    )  # fmt: skip
