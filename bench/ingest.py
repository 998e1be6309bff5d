"""Ingest throughput: N synthetic article pages in the seed's format into a fresh SQLite.

    python bench/ingest.py [--pages 20000] [--related 3] [--quick]

Prints articles/s (every article stored: main articles plus their "Berita terkait"
items), the peak RSS of the process, and the CPU time of the ingesting process and of
the second process that analyses related-news terms. Goal: >= 2,000 articles/s.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kabar import config as config_module
from kabar.ingest import ingest_path
from kabar.store import Store

WORDS = (
    "pemerintah presiden menteri rakyat ekonomi harga beras pasar bank rupiah investasi "
    "sekolah guru siswa rumah sakit dokter pasien banjir gempa hujan jalan tol kereta "
    "bandara pesawat polisi hakim sidang partai pemilu suara kota desa petani nelayan laut "
    "pulau hutan sungai listrik energi minyak gas tambang pabrik buruh upah pajak anggaran "
    "Jakarta Surabaya Bandung Medan Makassar Papua Bali Cina Amerika Jepang Korea Rusia"
).split()
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTHS = ("Januari Februari Maret April Mei Juni Juli Agustus September Oktober November "
          "Desember").split()  # fmt: skip


def sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def page(rng: random.Random, number: int, related: int) -> str:
    moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * number)
    local = moment + timedelta(hours=7)
    lines = [
        f"{sentence(rng, 8)[:-1]} {number}",
        f"{DAYS[local.weekday()]}, {local.day} {MONTHS[local.month - 1]} {local.year} "
        f"{local:%H:%M} WIB",
        f"TEMPO.CO, Jakarta - {sentence(rng, 30)} {sentence(rng, 20)}",
        *(f"{sentence(rng, 25)} {sentence(rng, 18)}" for _ in range(5)),
        f"Baca juga: {sentence(rng, 7)[:-1]}",
        "ISTMAN MP | REUTERS",
        "Berita terkait",
    ]
    for item in range(related):
        title = f"{sentence(rng, 9)[:-1]} {number}-{item}"
        lines += [title, f"{item + 2} jam lalu", title, sentence(rng, 18), "Baca Selengkapnya"]
    return "\n\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--related", type=int, default=3, help="Berita terkait items per page")
    parser.add_argument("--quick", action="store_true", help="200 pages: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.pages = 200
    rng = random.Random(20261127)
    with tempfile.TemporaryDirectory(prefix="kabar-bench-") as scratch:
        root = Path(scratch)
        pages = root / "seeds"
        pages.mkdir()
        for number in range(args.pages):
            (pages / f"{number:06d}.txt").write_text(page(rng, number, args.related), "utf-8")
        config_path = root / "kabar.yaml"
        config_path.write_text(
            "version: 1\nsite: {title: Bench, url: 'https://bench.example.id'}\n"
            "storage: {database: 'sqlite:///bench.db'}\n"
            "sources: [{id: seeds, kind: pages, path: seeds/}]\n",
            encoding="utf-8",
        )
        config = config_module.load(config_path)
        with Store.open(config.database_url) as store:
            started, cpu = time.perf_counter(), time.process_time()
            report = ingest_path(config, store, pages, "seeds")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            stored = store.count()
    assert not report.failures, report.failures[:3]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pages:          {args.pages:,} ({args.related} related items each)")
    print(f"articles:       {stored:,} stored in {elapsed:.2f} s")
    print(f"throughput:     {stored / elapsed:,.0f} articles/s  (goal >= 2,000)")
    print(f"pages/s:        {args.pages / elapsed:,.0f}")
    print(f"peak RSS:       {peak_mib:,.0f} MiB")
    worker = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"CPU:            {cpu:.1f} s ingesting, {worker.ru_utime + worker.ru_stime:.1f} s in the "
        "related-terms worker (wall time on two free cores: about the larger)"
    )


if __name__ == "__main__":
    main()
