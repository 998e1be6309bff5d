"""Peak memory of reading one large file: each reader must stay within about 10x the
file's size plus 200 MB, however the file is made.

    python bench/ingest_memory.py [--mib 18] [--quick]

Writes files of SIZE MiB (an array of `{}`, JSON Lines of `{}`, JSON Lines of valid
articles, one deeply nested array) and reads each in a fresh subprocess, printing the
peak RSS, the bound, the time and what the reader said. --quick uses 2 MiB files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

READ_ONE = """
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from kabar.sources import ReadContext, ReadError, read_file

def peak_rss():  # VmHWM, not ru_maxrss: that keeps the forking parent's peak across exec
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


rejected = []
context = ReadContext("bench", "https://kabar.example.id", "id", ZoneInfo("Asia/Jakarta"),
                      datetime.now(UTC), reject=lambda where, reason: rejected.append(1))
started = time.monotonic()
try:
    outcome = f"{len(read_file(Path(sys.argv[1]), context))} articles, {len(rejected)} rejected"
except ReadError as exc:
    outcome = f"refused: {exc}"
print(json.dumps({"peak": peak_rss(),
                  "seconds": time.monotonic() - started, "outcome": outcome}))
"""


def article(n: int) -> str:
    return json.dumps({
        "url": f"https://kabar.example.id/bench/{n}", "title": f"Judul berita nomor {n}",
        "body": "Isi berita yang cukup panjang untuk sebuah paragraf. " * 4,
        "published": "2024-05-01T07:00:00+07:00", "tags": ["bench", "memori"],
    })  # fmt: skip


def make_files(folder: Path, size: int) -> list[Path]:
    files = {
        "empty-objects-array.json": "[" + ",".join(["{}"] * (size // 3)) + "]",
        "empty-objects.jsonl": "{}\n" * (size // 3),
        "nested-array.json": "[" * (size // 2) + "]" * (size // 2),
    }
    lines, total, n = [], 0, 0
    while total < size:
        lines.append(article(n))
        total, n = total + len(lines[-1]) + 1, n + 1
    files["articles.jsonl"] = "\n".join(lines)
    paths = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths


def measure(path: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", READ_ONE, str(path)], capture_output=True, text=True, check=True
    )
    figures: dict[str, object] = json.loads(result.stdout)
    figures["bound"] = 10 * path.stat().st_size + 200 * 2**20
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=18.0, help="size of each file")
    parser.add_argument("--quick", action="store_true", help="2 MiB files, a few seconds")
    args = parser.parse_args()
    size = int((2.0 if args.quick else args.mib) * 2**20)
    over = False
    with tempfile.TemporaryDirectory() as folder:
        for path in make_files(Path(folder), size):
            figures = measure(path)
            peak, bound = int(figures["peak"]), int(figures["bound"])  # type: ignore[call-overload]
            over |= peak > bound
            mib = path.stat().st_size / 2**20
            print(
                f"{path.name:26} {mib:5.1f} MiB  peak {peak / 2**20:6.0f} MiB  "
                f"bound {bound / 2**20:4.0f} MiB  {figures['seconds']:5.1f} s  {figures['outcome']}"
            )
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
