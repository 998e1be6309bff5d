"""How fast kabar reads what comes back: a Maildir of mixed DSNs (hard and soft), ARF
complaints and auto-replies, read by `kabar bounces fetch`'s code into a SQLite store.

    python bench/bounces.py [--messages 10000] [--quick]

Each DSN and complaint names a delivery of a sent issue by its VERP token, so every one
is verified and acted on (subscribers bounced, complained, suppressed). Prints the rate
and the peak RSS. Goal: at least 1,000 messages/s. --quick reads 500.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from kabar import config as config_module
from kabar import verp
from kabar.inbound.mailbox import fetch_maildir
from kabar.inbound.process import Processor
from kabar.ledger import Ledger
from kabar.store import Store
from kabar.store.tables import deliveries
from kabar.subscribers import Subscriber, Subscribers

SECRET = b"bench-secret"
PATTERN = "bounces+{token}@bounce.kabar.example.id"
CONFIG = f"""\
version: 1
site: {{title: Kabar Bench, url: "https://kabar.example.id"}}
storage: {{database: "sqlite:///kabar.db"}}
lists: [{{id: pembaca, from: "Kabar <redaksi@kabar.example.id>"}}]
bounces:
  address: "{PATTERN}"
  unsubscribe_address: "unsubscribe+{{token}}@bounce.kabar.example.id"
  mailbox: {{kind: maildir, path: Maildir}}
"""


def peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def dsn(to: str, recipient: str, status: str) -> bytes:
    boundary = uuid.uuid4().hex
    return (
        "From: MAILER-DAEMON@mta.example.net (Mail Delivery System)\r\n"
        f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mta.example.net>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you "
        f"that your message could not be delivered.\r\n\r\n--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mta.example.net\r\n"
        f"\r\nFinal-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822; {recipient}\r\n"
        f"Action: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: Kabar <redaksi@kabar.example.id>\r\nTo: {recipient}\r\n"
        f"Subject: Kabar pagi\r\nMessage-ID: <{uuid.uuid4().hex}@kabar.example.id>\r\n"
        f"\r\n--{boundary}--\r\n"
    ).encode()


def arf(to: str, recipient: str, message_id: str) -> bytes:
    boundary = uuid.uuid4().hex
    return (
        f"From: <fbl@isp.example>\r\nTo: <{to}>\r\nSubject: complaint\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@isp.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: Bench/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{to}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: <redaksi@kabar.example.id>\r\nTo: <{recipient}>\r\nSubject: Kabar pagi\r\n"
        f"Message-ID: {message_id}\r\n\r\nBerita hari ini.\r\n\r\n--{boundary}--\r\n"
    ).encode()


def auto_reply(to: str) -> bytes:
    return (
        f"From: Budi <budi@example.net>\r\nTo: {to}\r\nSubject: Out of Office: Kabar pagi\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\nAuto-Submitted: auto-replied\r\n"
        "Content-Type: text/plain\r\n\r\nSaya sedang cuti sampai 10 Desember.\r\n"
    ).encode()


def prepare(folder: Path, count: int) -> tuple[Store, Processor, Path]:
    (folder / "kabar.yaml").write_text(CONFIG)
    config = config_module.load(folder / "kabar.yaml")
    store = Store.open(config.database_url)
    now = datetime.now(UTC)
    people = [
        Subscriber(f"{n:016x}", "pembaca", f"pembaca{n}@example.net", created=now, updated=now)
        for n in range(count)
    ]
    Subscribers(store.engine).insert_many(people)
    ledger = Ledger(store.engine)
    key = "harian:pembaca:2026-12-05"
    ledger.create_issue(
        key, digest_id="harian", list_id="pembaca", period="2026-12-05", issue_time=now,
        now=now, state="rendered",
    )  # fmt: skip
    ledger.materialise(
        key, "pembaca", chunk_size=1000, message_id=lambda sid: f"<{sid}@kabar.example.id>",
        now=now,
    )  # fmt: skip
    with store.engine.begin() as connection:
        connection.execute(update(deliveries).values(state="sent"))
    box = folder / "Maildir"
    for part in ("tmp", "new", "cur"):
        (box / part).mkdir(parents=True)
    with store.engine.connect() as connection:
        rows = connection.execute(
            deliveries.select().with_only_columns(
                deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.message_id
            )
        ).all()
    for n, row in enumerate(rows):
        to = verp.address(PATTERN, verp.delivery_token(SECRET, row.id, key, row.subscriber_id))
        recipient = f"pembaca{int(row.subscriber_id, 16)}@example.net"
        kind = n % 8
        if kind < 3:
            data = dsn(to, recipient, "5.1.1")
        elif kind < 5:
            data = dsn(to, recipient, "4.2.2")
        elif kind < 6:
            data = arf(to, recipient, row.message_id)
        else:
            data = auto_reply(to)
        (box / "new" / f"{1764921600 + n}.M{n}P1.bench").write_bytes(data)
    return store, Processor(config, store.engine, SECRET), box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="How many messages.")
    parser.add_argument("--quick", action="store_true", help="500 messages, for a smoke test.")
    args = parser.parse_args()
    count = 500 if args.quick else args.messages
    with tempfile.TemporaryDirectory(prefix="kabar-bench-bounces-") as tmp:
        store, processor, box = prepare(Path(tmp), count)
        started, cpu = time.perf_counter(), time.process_time()
        read = fetch_maildir(processor, box)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.close()
        print(f"messages: {read} ({processor.tally.describe()})")
        print(f"bounces: {read:,} messages in {seconds:.2f} s, {read / seconds:,.0f} msg/s")
        # The machine may be shared: CPU time says what one core does, undisturbed.
        print(f"bounces per core (CPU time): {read / cpu:,.0f} msg/s")
        print(f"peak RSS: {peak_rss() / 2**20:.0f} MiB")
        if read != count or len(list((box / "cur").iterdir())) != count:
            raise SystemExit("not every message was read and moved")


if __name__ == "__main__":
    main()
