"""A reader's whole journey in headless Chromium (Selenium, Debian's chromium-driver)
against `kabar serve` in uvicorn on 127.0.0.1, with the outbox transport: the sign-up
form, the confirmation mail, the preference centre opened from a delivered digest, a
change of sections and language, the next issue with only those sections in that
language, and leaving. Keyboard only: Tab reaches every field and the submit button.

Screenshots of the form and the preference centre at 375 and 1280 px are written to
KABAR_SCREENSHOTS (else the test's tmp folder). Skipped without chromium-driver, except
under CI=true (.ci/run installs it), where that fails.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kabar import config as config_module
from kabar.config import Config
from kabar.deliver import open_transport
from kabar.deliver.issue import IssueRunner, Plan
from kabar.deliver.send import utcnow
from kabar.store import Store
from kabar.web import create_app

from ..support.delivery_setup import SECRET
from ..support.digest import make_article
from ..support.project import WriteConfig
from ..support.serving import free_port, uvicorn_thread

pytestmark = pytest.mark.chromium
KEEP = os.environ.get("KABAR_SCREENSHOTS")  # read at import: clean_environ drops KABAR_*
DRIVER = "/usr/bin/chromedriver"
SECTIONS = ("Nasional", "Ekonomi", "Olahraga")


def _webdriver(profile: Path) -> Any:
    if not (shutil.which("chromium") and Path(DRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are not installed")
        pytest.skip("chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)  # fmt: skip
    options.binary_location = shutil.which("chromium") or ""
    service = webdriver.ChromeService(executable_path=DRIVER)
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KABAR_SECRET", SECRET)


@pytest.fixture
def site(write_config: WriteConfig, project: Path) -> Iterator[tuple[Config, str]]:
    """A project with articles in three sections, served by uvicorn on a free port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    digest = {
        "id": "harian", "list": "pembaca", "subject": "Kabar pagi, {date}", "window": "30d",
        "related": {"per_item": 0}, "repeat_articles": True,
    }  # fmt: skip
    path = write_config(
        lists=[{"id": "pembaca", "name": "Kabar Pembaca", "welcome": True,
                "from": "Kabar Contoh <redaksi@kabar.example.id>"}],
        digests=[digest, {**digest, "id": "mingguan", "window": "7d"}],
        web={"base_url": base}, delivery={"transport": "outbox"},
    )  # fmt: skip
    config = config_module.load(path)
    now = utcnow()
    with Store.open(config.database_url) as store:
        store.upsert([
            make_article(n, when=now, section=section, title=f"Berita {section} {n}")
            for n, section in ((n, SECTIONS[n % 3]) for n in range(1, 10))
        ])  # fmt: skip
    with uvicorn_thread(create_app(config), port, log_level="error"):
        yield config, base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = _webdriver(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(KEEP) if KEEP else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver: Any, folder: Path, name: str) -> None:
    """The whole page at a phone's and a desktop's width (device metrics, so the
    viewport is exactly that wide and the shot as tall as the page)."""
    for width in (375, 1280):
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways at {width} px"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": int(height)}
        )
        path = folder / f"{name}-{width}.png"
        driver.save_screenshot(str(path))
        assert path.stat().st_size > 1000
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def outbox_mails(config: Config) -> list[EmailMessage]:
    folder = config.resolve(config.delivery.outbox) / "new"
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    ]


def wait_for_mail(config: Config, subject_part: str, count: int = 1) -> EmailMessage:
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in outbox_mails(config) if subject_part in str(m["Subject"])]
        if len(found) >= count:
            return found[count - 1]
        assert time.monotonic() < deadline, f"no mail with {subject_part!r} in the outbox"
        time.sleep(0.1)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def send_issue(config: Config, key: str, at_offset: timedelta) -> None:
    """What `kabar send harian --now` does, under a key of the test's choosing (so a
    second issue the same day is a new issue)."""

    async def run() -> None:
        with Store.open(config.database_url) as store:
            runner = IssueRunner(config, store, open_transport(config), secret=SECRET.encode())
            try:
                moment = utcnow() + at_offset
                runner.create(Plan(config.digest("harian"), key, key.rsplit(":", 1)[1], moment))
                await runner.run(key)
            finally:
                await runner.close()

    asyncio.run(run())


def and_wait(browser: Any, action: Any) -> None:
    """Do what submits a form or follows a link, and wait until the next page is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(browser, 10).until(expected_conditions.staleness_of(old))


def stop(element: Any) -> str:
    """What a Tab stop is: a field's id, a radio group's name, "submit" for the button."""
    if element.get_attribute("type") == "radio":
        return f"group:{element.get_attribute('name')}"
    if element.tag_name == "button":
        return "submit"
    return str(element.get_attribute("id") or element.tag_name)


def link(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    assert found, f"no {pattern!r} in {text[:400]!r}"
    return found.group(0)


def test_a_reader_joins_chooses_sections_and_language_and_leaves(
    site: tuple[Config, str], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    config, base = site
    shots = shots_folder(tmp_path)

    # The form in the browser's language (headless Chromium asks for English); its
    # switch link gives the Indonesian one. Every field labelled.
    browser.get(f"{base}/subscribe")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    screenshot(browser, shots, "subscribe-form-en")
    and_wait(browser, browser.find_element(By.LINK_TEXT, "Bahasa Indonesia").click)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "id"
    fields = browser.find_elements(By.CSS_SELECTOR, "form input:not([type=hidden])")
    for field in fields:
        ident = field.get_attribute("id")
        assert browser.find_elements(By.CSS_SELECTOR, f"label[for='{ident}']"), ident
    screenshot(browser, shots, "subscribe-form")

    # Keyboard only: Tab from the top reaches every field and the button (a radio group
    # is one stop: arrow keys move inside it, as in every browser).
    browser.set_window_size(1280, 900)
    browser.find_element(By.TAG_NAME, "body").click()
    reachable = [f for f in fields if f.get_attribute("tabindex") != "-1"]
    wanted = {stop(f) for f in reachable} | {"submit"}
    seen: list[str] = []
    for _ in range(len(reachable) + 4):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        seen.append(stop(browser.switch_to.active_element))
    assert wanted <= set(seen), f"Tab never reached {wanted - set(seen)}"
    assert "website" not in seen  # the honeypot is out of the tab order
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    browser.find_element(By.ID, "locale-id").send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "locale-en").is_selected()
    browser.find_element(By.ID, "locale-en").send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.ID, "locale-id").is_selected()

    # Fill it in by keyboard: address, name, only the daily edition.
    browser.find_element(By.ID, "email").send_keys("sari@example.com")
    browser.find_element(By.ID, "name").send_keys("Sari Dewi")
    browser.find_element(By.ID, "digest-mingguan").send_keys(Keys.SPACE)  # untick the weekly
    and_wait(browser, lambda: browser.find_element(By.ID, "name").send_keys(Keys.ENTER))
    assert "sari@example.com" in browser.find_element(By.TAG_NAME, "body").text

    # The confirmation mail, from the outbox; confirm; the welcome mail follows.
    confirm = link(body_text(wait_for_mail(config, "Konfirmasi")), rf"{base}/subscribe/confirm/\S+")
    browser.get(confirm)
    and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    assert "Terima kasih" in browser.find_element(By.TAG_NAME, "body").text
    welcome = wait_for_mail(config, "Selamat datang")
    assert "Sari Dewi" in body_text(welcome)

    # The first issue: every section, in Indonesian; its "Atur langganan" link.
    send_issue(config, "harian:pembaca:satu", timedelta(0))
    first = wait_for_mail(config, "Kabar pagi")
    first_text = body_text(first)
    assert all(section in first_text for section in SECTIONS)
    browser.get(link(first_text, rf"{base}/preferences/[^\s>)\]]+"))
    assert browser.find_element(By.ID, "digest-harian").is_selected()
    assert not browser.find_element(By.ID, "digest-mingguan").is_selected()
    screenshot(browser, shots, "preferences")

    # Only Ekonomi and Olahraga, in English.
    browser.set_window_size(1280, 900)
    for ident in ("section-0", "section-2"):  # sorted: Ekonomi, Nasional, Olahraga
        browser.find_element(By.ID, ident).click()
    browser.find_element(By.ID, "locale-en").click()
    and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click)
    assert "Your choices are saved" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    # The next issue: those sections only, in English.
    send_issue(config, "harian:pembaca:dua", timedelta(minutes=1))
    second = wait_for_mail(config, "Kabar pagi", count=2)
    second_text = body_text(second)
    assert "Ekonomi" in second_text and "Olahraga" in second_text
    assert "Berita Nasional" not in second_text
    assert "Manage" in second_text or "Unsubscribe" in second_text  # the English footer

    # Leave everything from the preference centre.
    browser.get(link(second_text, rf"{base}/preferences/[^\s>)\]]+"))
    and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button.quiet").click)
    assert "no more email" in browser.find_element(By.TAG_NAME, "body").text
    with Store.open(config.database_url) as store:
        from kabar.subscribers import Subscribers

        (row,) = list(Subscribers(store.engine).iter("pembaca"))
        assert row.status == "unsubscribed"
