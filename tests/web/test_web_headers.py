"""`kabar serve`'s responses over real HTTP: security headers on every page and feed, and
hostile paths answered with 4xx, never a 500."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from .test_feeds_serve import server, site  # noqa: F401 - the fixtures, shared

FRAMING = "frame-ancestors 'none'"


def policy(response: httpx.Response) -> dict[str, str]:
    directives = response.headers["content-security-policy"].split(";")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in directives if d.strip()}


@pytest.mark.parametrize("path", ["/feeds/", "/feeds/index.html", "/feeds/nope.html"])
def test_html_from_storage_carries_the_headers(server: httpx.Client, path: str) -> None:  # noqa: F811
    response = server.get(path)
    assert response.headers["content-type"].startswith("text/html") or response.status_code == 404
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    if response.headers["content-type"].startswith("text/html"):
        found = policy(response)
        assert found["default-src"] == "'none'"
        assert found["frame-ancestors"] == "'none'" and found["form-action"] == "'self'"
        assert "script-src" not in found


def test_subscribe_pages_carry_their_own_strict_policy(server: httpx.Client) -> None:  # noqa: F811
    for response in (
        server.get("/unsubscribe/forged.token"),
        server.post("/subscribe", data={"email": "x@example.com"}),  # no Origin: 403
    ):
        assert response.status_code in (403, 404)
        found = policy(response)
        assert found["default-src"] == "'none'" and found["style-src"].startswith("'sha256-")
        assert (found["form-action"], found["frame-ancestors"]) == ("'self'", "'none'")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/feeds/semua.rss.xml", "/feeds/semua.json"])
def test_feeds_carry_nosniff(server: httpx.Client, path: str) -> None:  # noqa: F811
    response = server.get(path)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/semua.rss.xml%00",
        "/feeds/%00",
        "/feeds/semua%00.rss.xml",
        "/feeds/semua.rss.xml/x",
        "/feeds/semua.rss.xml/",
        "/feeds/rubrik/dunia.rss.xml/index.html",
        "/feeds/" + "a" * 300 + ".rss.xml",
        "/feeds/" + "a/" * 2000 + "b.xml",
        "/feeds/%ff%fe.xml",
        "/feeds/x%0d%0aSet-Cookie:%20a=b",
        "/unsubscribe/" + "a" * 5000,
        "/subscribe/confirm/%00",
    ],
)
def test_hostile_paths_get_4xx_not_500(server: httpx.Client, path: str) -> None:  # noqa: F811
    response = server.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert "Traceback" not in response.text
    assert "set-cookie" not in response.headers


@pytest.mark.chromium
@pytest.mark.parametrize("path", ["/unsubscribe/forged.token", "/feeds/", "/feeds/nope"])
def test_chromium_finds_nothing_the_policy_blocks(server: httpx.Client, path: str) -> None:  # noqa: F811
    """The pages still look as meant under their policy: Chromium logs every inline style
    or resource a Content-Security-Policy refuses to the console."""
    from ..render.test_digest_chromium import CHROMIUM_FLAGS, _chromium

    result = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0", "--dump-dom",
         f"{server.base_url}{path}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<h1" in result.stdout or "not found" in result.stdout
    assert "Content Security Policy" not in result.stderr
