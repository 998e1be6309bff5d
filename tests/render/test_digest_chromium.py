"""The digest as a reader sees it: headless Chromium at 600 and 375 px.

Skipped when Chromium is not installed, except under CI=true (.ci/run installs it),
where a missing browser fails the test. Set KABAR_SCREENSHOTS=DIR to keep the PNGs.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import html as lxml_html

from kabar.model import RelatedLink
from kabar.store import Store

from ..support.digest import RECIPIENT, digest_config, ingest_seed, make_article, seed_issue
from ..support.project import SEED_AS_OF, WriteConfig

pytestmark = pytest.mark.chromium
KEEP = os.environ.get("KABAR_SCREENSHOTS")  # read at import: clean_environ drops KABAR_*
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--hide-scrollbars", "--no-first-run",
]  # fmt: skip
PHOTO = """<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="675">
<rect width="1200" height="675" fill="#8aa6b8"/><circle cx="860" cy="250" r="120" fill="#f2d16b"/>
<path d="M0 560 L300 330 L520 520 L760 300 L1200 600 L1200 675 L0 675Z" fill="#3f5f4a"/></svg>"""
# Loaded next to the issue: measures every box of each framed page against its viewport.
CHECK_PAGE = """<!doctype html><html><body style="margin:0">
<iframe id="issue" src="issue.html" style="width:375px;height:900px;border:0"></iframe>
<iframe id="control" src="control.html" style="width:375px;height:900px;border:0"></iframe>
<script>
function check(frame) {
  const doc = document.getElementById(frame).contentDocument;
  const width = doc.documentElement.clientWidth;
  const overflowing = [];
  for (const el of doc.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      overflowing.push(el.tagName + ' ' + Math.round(box.left) + '..' + Math.round(box.right));
    }
  }
  const images = [...doc.images];
  return {width, scrollWidth: doc.documentElement.scrollWidth, overflowing,
          images: images.length, loaded: images.filter(i => i.naturalWidth > 0).length,
          withoutAlt: images.filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src)};
}
window.addEventListener('load', () => {
  document.body.setAttribute('data-result', JSON.stringify(
    {issue: check('issue'), control: check('control')}));
});
</script></body></html>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is not installed (apt-get install -y chromium fonts-dejavu-core)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium fonts-dejavu-core)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, as a mail client would fetch images."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _run(chromium: str, *args: str) -> str:
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: what the browser sees doesn't depend on the database."""
    with Store.open(f"sqlite:///{tmp_path / 'kabar.db'}") as opened:
        yield opened


def test_digest_fits_600_and_375_px_and_every_image_has_alt(
    write_config: WriteConfig, store: Store, served: tuple[Path, str]
) -> None:
    chromium = _chromium()
    folder, base = served
    (folder / "photo.svg").write_text(PHOTO)
    config = digest_config(write_config, window="since_last", top_site={
        "title": "Kabar Contoh", "url": "https://kabar.example.id",
        "contact": "Redaksi Kabar Contoh, Jl. Palmerah Barat 8, Jakarta 10270"})  # fmt: skip
    ingest_seed(config, store)
    store.upsert([
        make_article(0, when=SEED_AS_OF - timedelta(minutes=30),
                     title="Foto: Banjir Rob Rendam Pesisir Utara Jakarta, Warga Mengungsi",
                     section="Metro", image_url=f"{base}/photo.svg", image_alt="Banjir rob",
                     summary="Air laut pasang merendam permukiman di pesisir utara Jakarta. "
                     "Sebagian warga mengungsi ke masjid dan sekolah terdekat.",
                     related=(RelatedLink("Tanggul Laut Raksasa Kembali Dibahas",
                                          "https://kabar.example.id/read/tanggul", "Pemerintah "
                                          "membahas lagi rencana tanggul laut di utara Jawa."),))
    ])  # fmt: skip
    issue = seed_issue(config, store)
    page = issue.html_for(RECIPIENT)
    (folder / "issue.html").write_text(page, encoding="utf-8")
    # The control proves the check sees overflow: the same issue with one too-wide box.
    (folder / "control.html").write_text(
        page.replace("</body>", '<div style="width:520px">x</div></body>'), encoding="utf-8"
    )
    (folder / "check.html").write_text(CHECK_PAGE)

    dom = _run(chromium, "--virtual-time-budget=5000", "--dump-dom", f"{base}/check.html")
    result = json.loads(lxml_html.fromstring(dom).body.get("data-result"))
    issue_view, control = result["issue"], result["control"]
    assert control["overflowing"], "the overflow check found nothing in the control page"
    assert issue_view["width"] == 375
    assert issue_view["overflowing"] == [] and issue_view["scrollWidth"] == 375
    assert issue_view["images"] == 1 and issue_view["loaded"] == 1
    assert issue_view["withoutAlt"] == []

    shots = Path(KEEP) if KEEP else folder
    shots.mkdir(parents=True, exist_ok=True)
    for width in (600, 375):
        target = shots / f"digest-{width}.png"
        _run(chromium, f"--window-size={width},4000", f"--screenshot={target}",
             "--virtual-time-budget=5000", f"{base}/issue.html")  # fmt: skip
        assert _png_size(target) == (width, 4000)
        assert target.stat().st_size > 20_000  # a rendered page, not a blank one


# Measures, in the issue framed at 375 px, the boxes of text a reader reads (CSS pixels,
# which are the screenshot's pixels at scale factor 1).
MEASURE_PAGE = """<!doctype html><html><body style="margin:0">
<iframe id="issue" src="issue.html" style="width:375px;height:3000px;border:0"></iframe>
<script>
window.addEventListener('load', () => {
  const doc = document.getElementById('issue').contentDocument;
  const pick = {
    greeting: 'p', title: 'h2.kabar-title', summary: '.kabar-card p + p',
    related: '.kabar-related a', footer: '.kabar-frame a',
  };
  const boxes = {};
  for (const [name, selector] of Object.entries(pick)) {
    const el = [...doc.querySelectorAll(selector)].find(e => e.textContent.trim());
    const r = el.getBoundingClientRect();
    boxes[name] = [r.left, r.top, r.right, r.bottom];
  }
  document.body.setAttribute('data-boxes', JSON.stringify(boxes));
});
</script></body></html>"""


def _luminance(pixel: tuple[int, ...]) -> float:
    red, green, blue = pixel[:3]
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def _ground_and_ink(shot: Path, box: list[float]) -> tuple[float, float]:
    """The box's background (its most common colour) and its text (the pixels that
    differ most from that background), as luminance 0..1."""
    from PIL import Image

    with Image.open(shot) as image:
        left, top, right, bottom = (round(value) for value in box)
        data = image.convert("RGB").crop((left, top, right, bottom)).tobytes()
    pixels = [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]
    ground = _luminance(max(set(pixels), key=pixels.count))
    levels = sorted(_luminance(pixel) for pixel in pixels)
    far = levels[len(levels) // 50] if ground > 0.5 else levels[-len(levels) // 50 - 1]
    return ground, far


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_dark_mode_shows_light_text_on_a_dark_ground(
    write_config: WriteConfig, store: Store, served: tuple[Path, str], scheme: str
) -> None:
    chromium = _chromium()
    folder, base = served
    # Seven cards leave the seed's other articles free to be one card's related block.
    config = digest_config(write_config, window="since_last", max_items=7)
    ingest_seed(config, store)
    page = seed_issue(config, store).html_for(RECIPIENT)
    assert "kabar-related" in page
    assert "color-scheme: light dark" in page and "prefers-color-scheme: dark" in page
    (folder / "issue.html").write_text(page, encoding="utf-8")
    (folder / "measure.html").write_text(MEASURE_PAGE)
    mode = ["--force-dark-mode"] if scheme == "dark" else []
    flags = [*mode, "--window-size=375,3000", "--force-device-scale-factor=1",
             "--virtual-time-budget=5000"]  # fmt: skip
    dom = _run(chromium, *flags, "--dump-dom", f"{base}/measure.html")
    boxes = json.loads(lxml_html.fromstring(dom).body.get("data-boxes"))
    shots = Path(KEEP) if KEEP else folder
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"digest-375-{scheme}.png"
    _run(chromium, *flags, f"--screenshot={shot}", f"{base}/issue.html")
    assert _png_size(shot) == (375, 3000)
    for name, box in boxes.items():
        assert box[2] <= 375 and box[3] <= 3000, (name, box)
        ground, ink = _ground_and_ink(shot, box)
        if scheme == "dark":
            assert ground < 0.2 and ink > 0.6, (name, ground, ink)
        else:  # the control: the same sampling sees dark text on a light ground
            assert ground > 0.8 and ink < 0.45, (name, ground, ink)
