"""`kabar run` reads the bounce mailbox every `bounces.mailbox.every` (a scheduler hook)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import Engine

from kabar.config import Config
from kabar.inbound.mailbox import MailboxError, fetch
from kabar.inbound.process import Processor

log = logging.getLogger(__name__)


def mailbox_poll(
    config: Config, engine: Engine, secret: bytes
) -> tuple[str, timedelta, Callable[[], Awaitable[None]]] | None:
    """The scheduler's periodic job reading the configured mailbox; None without one."""
    mailbox = config.bounces.mailbox
    if mailbox is None:
        return None

    def once() -> None:
        processor = Processor(config, engine, secret)
        try:
            fetch(processor)
        except (MailboxError, OSError) as exc:  # the next poll tries again
            log.error("bounces: %s", exc)
            return
        if processor.tally.messages:
            log.info("bounces: %s", processor.tally.describe())

    async def poll() -> None:
        await asyncio.to_thread(once)

    return "kabar:bounces-fetch", mailbox.every, poll
