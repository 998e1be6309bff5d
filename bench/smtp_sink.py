"""A counting SMTP sink for the delivery benches, fast enough not to be what they measure.

aiosmtpd, which the tests use as a real server, reads DATA a line at a time in Python: on
this machine it takes about 100 messages/s of an 85 KB digest whatever the number of
connections, below what kabar sends, so every bench against it measured aiosmtpd. This
sink speaks just enough SMTP for aiosmtplib (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
reads DATA in whole socket reads looking only for the terminating CRLF.CRLF, and keeps
nothing but counts: messages, connections, and when messages arrived.

    python bench/smtp_sink.py PORT    # prints "ready", then answers each stdin line:
        count     the messages received so far
        reset     "ok"; starts a new run for `stats`
        stats     JSON of the run: messages, connections, first and last arrival
                  (time.monotonic(), the same clock in every process of the machine), and
                  the idle time: the gaps of more than GAP seconds between two arrivals
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

_END_OF_DATA = b"\r\n.\r\n"
_EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"


GAP = 0.02  # seconds without a message that count as idle: 15-30 sends at the usual rates


class Counter:
    received = 0


class Run:
    """What arrived since the last `reset`."""

    messages = 0
    connections = 0
    first = 0.0
    last = 0.0
    idle = 0.0  # seconds, summed over the gaps longer than GAP
    gaps = 0

    @classmethod
    def reset(cls) -> None:
        cls.messages = cls.connections = cls.gaps = 0
        cls.first = cls.last = cls.idle = 0.0

    @classmethod
    def arrived(cls) -> None:
        now = time.monotonic()
        if cls.messages == 0:
            cls.first = now
        elif now - cls.last > GAP:
            cls.idle += now - cls.last
            cls.gaps += 1
        cls.last = now
        cls.messages += 1

    @classmethod
    def stats(cls) -> str:
        names = ("messages", "connections", "first", "last", "idle", "gaps")
        return json.dumps({name: getattr(cls, name) for name in names})


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Run.connections += 1
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        searched_from = max(len(self.buffer) - len(_END_OF_DATA), 0)
        self.buffer += data
        while self.buffer:
            if self.in_data:
                end = self.buffer.find(_END_OF_DATA, searched_from)
                if end < 0:
                    return
                del self.buffer[: end + len(_END_OF_DATA)]
                self.in_data = False
                Counter.received += 1
                Run.arrived()
                self._reply(b"250 OK queued\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self._command(line)
            searched_from = 0

    def _command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            self._reply(_EHLO)
        elif verb == b"DATA":
            self.in_data = True
            # A message whose body is empty ends at once with ".\r\n".
            self.buffer[:0] = b"\r\n"
            self._reply(b"354 end with <CRLF>.<CRLF>\r\n")
        elif verb == b"QUIT":
            self._reply(b"221 bye\r\n")
            assert self.transport is not None
            self.transport.close()
        else:  # HELO, MAIL, RCPT, RSET, NOOP: accept
            self._reply(b"250 OK\r\n")

    def _reply(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.write(text)


def serve(port: int) -> None:
    """Serve on 127.0.0.1:port in a thread; answer each stdin line with the count."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(SinkProtocol, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            print(Run.stats(), flush=True)
        elif command == "reset":
            Run.reset()
            print("ok", flush=True)
        else:
            print(Counter.received, flush=True)
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
