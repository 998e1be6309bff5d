"""SMTP delivery with aiosmtplib: N reused connections, recycled every M messages.

aiosmtplib has no pool and no pipelining, so concurrency is the number of connections.
All connections share one TLS context (building one loads the CA store: ~17 ms). Its own
timeout, per server reply, is off: `asyncio.timeout` here bounds the whole send, connect
included, and the four replies of each message need no timer each.
Any failure other than a per-recipient 5xx closes the connection, so the next message (or
the retry) starts on a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiosmtplib

from kabar.config import Config, Smtp, read_secret
from kabar.deliver.ratelimit import Limiter, RateLimiter
from kabar.deliver.transport import Envelope, Lane, Reply, Stage, Transport

log = logging.getLogger(__name__)


def tls_context(smtp: Smtp, config: Config) -> ssl.SSLContext | None:
    if not (smtp.tls or smtp.starttls):
        return None
    cafile = str(config.resolve(smtp.ca_file)) if smtp.ca_file else None
    return ssl.create_default_context(cafile=cafile)


class SmtpLane(Lane):
    def __init__(
        self,
        smtp: Smtp,
        *,
        number: int,
        password: str | None,
        context: ssl.SSLContext | None,
    ) -> None:
        self.smtp = smtp
        self.number = number
        self.password = password
        self.context = context
        self.client: aiosmtplib.SMTP | None = None
        self.sent_on_connection = 0
        self.timeout = smtp.timeout.total_seconds()

    async def send(self, envelope: Envelope, message: bytes) -> Reply:
        stage: Stage = "connect"
        try:
            async with asyncio.timeout(self.timeout):
                if self.client is None or self.sent_on_connection >= self.smtp.recycle_after:
                    await self._connect()
                assert self.client is not None
                stage = "data"
                await self.client.sendmail(envelope.sender, [envelope.recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            reply = Reply(refused.code, refused.message, "rcpt")
            if reply.kind == "retry":
                await self._drop()
            return reply
        except aiosmtplib.SMTPSenderRefused as exc:
            await self._drop()
            return Reply(exc.code, exc.message, "mail")
        except aiosmtplib.SMTPAuthenticationError as exc:
            await self._drop()
            return Reply(exc.code, exc.message, "auth")
        except aiosmtplib.SMTPResponseException as exc:
            reply = Reply(exc.code, exc.message, _stage_of(exc, stage))
            if reply.kind != "bounce" and reply.kind != "failed":
                await self._drop()
            return reply
        except TimeoutError:
            await self._drop()
            return Reply(0, f"no reply within {self.timeout:g}s", stage)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            if _tls_failure(exc):
                return Reply(0, f"TLS failed: {exc.__cause__ or exc}", "tls")
            return Reply(0, f"connection lost: {exc}", stage)
        self.sent_on_connection += 1
        return Reply(250, "2.0.0 accepted")

    async def _connect(self) -> None:
        await self._quit()
        smtp = self.smtp
        client = aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            use_tls=smtp.tls,
            start_tls=smtp.starttls,
            tls_context=self.context,
            username=smtp.username if self.password is not None else None,
            password=self.password,
            timeout=None,  # the caller's asyncio.timeout bounds the whole send
        )
        await client.connect()  # closes itself if it fails or is cancelled
        self.client = client
        self.sent_on_connection = 0
        log.debug("lane %d: connected to %s:%d", self.number, smtp.host, smtp.port)

    async def _quit(self) -> None:
        """End the session politely (recycling); a broken one is just closed."""
        client, self.client = self.client, None
        if client is None:
            return
        if client.is_connected:
            try:
                async with asyncio.timeout(min(self.timeout, 5.0)):
                    await client.quit()
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        client.close()

    async def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        await self._quit()


def _tls_failure(exc: Exception) -> bool:
    """An untrusted certificate, or STARTTLS required and not offered: a config problem."""
    if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
        return True
    return isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        type(exc) is aiosmtplib.SMTPException and "STARTTLS" in str(exc)
    )


def _stage_of(exc: aiosmtplib.SMTPResponseException, stage: Stage) -> Stage:
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError):
        return "connect"
    return stage


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(self, config: Config, *, limiter: Limiter | None = None) -> None:
        """`limiter`: the rate limit shared with other workers; by default, this process's."""
        smtp = config.delivery.smtp
        password = (
            read_secret(smtp.password_env, "SMTP authentication")
            if smtp.username and smtp.password_env
            else None
        )
        context = tls_context(smtp, config)
        lanes: list[Lane] = [
            SmtpLane(smtp, number=n, password=password, context=context)
            for n in range(smtp.connections)
        ]
        super().__init__(lanes, limiter=limiter or RateLimiter(smtp.rate_per_second))
        self.smtp = smtp

    async def close(self) -> None:
        await super().close()
        if self.smtp.tls or self.smtp.starttls:
            # A TLS connection closes with a close_notify round trip: let it finish before
            # the event loop ends, or its socket is left for the garbage collector.
            await asyncio.sleep(0.1)

    def describe(self) -> str:
        security = "TLS" if self.smtp.tls else "STARTTLS" if self.smtp.starttls else "plain"
        return (
            f"smtp {self.smtp.host}:{self.smtp.port} ({security}, "
            f"{self.smtp.connections} connections)"
        )
