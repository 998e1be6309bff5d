"""A counting SMTP sink for the delivery benches, fast enough not to be what they measure.

aiosmtpd, which the tests use as a real server, reads DATA a line at a time in Python: on
this machine it takes about 100 messages/s of an 85 KB digest whatever the number of
connections, below what kabar sends, so every bench against it measured aiosmtpd. This
sink speaks just enough SMTP for aiosmtplib (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
reads DATA in whole socket reads looking only for the terminating CRLF.CRLF, and keeps
nothing but a count.

    python bench/smtp_sink.py PORT    # prints "ready", then the count for each stdin line
"""

from __future__ import annotations

import asyncio
import sys
import threading

_END_OF_DATA = b"\r\n.\r\n"
_EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"


class Counter:
    received = 0


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
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
    for _ in sys.stdin:
        print(Counter.received, flush=True)
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
