"""Deliver: email. Issues through their states (`issue`), one Sender over the ledger
(`send`), and the transports behind one interface (`transport`: SMTP or an outbox folder).
"""

from __future__ import annotations

from kabar.config import Config
from kabar.deliver.ratelimit import Limiter
from kabar.deliver.transport import Transport


def open_transport(config: Config, *, limiter: Limiter | None = None) -> Transport:
    """The configured transport; `limiter` replaces the SMTP rate limit of this process."""
    if config.delivery.transport == "smtp":
        from kabar.deliver.smtp import SmtpTransport

        return SmtpTransport(config, limiter=limiter)
    from kabar.deliver.outbox import OutboxTransport

    return OutboxTransport(config.resolve(config.delivery.outbox))
