"""Reloading the config of `kabar run` without a restart: on SIGHUP, and when the file
changes (its modification time and size are polled). The new file is validated first; a
bad one changes nothing, and each of its problems is logged as `file:line:col: path:
message`. A good one goes to `apply` (the scheduler adds, removes and reschedules jobs).
Delivery settings (SMTP, the transport, the engine) still need a restart: sends in flight
keep the connections they have."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from kabar import config as config_module
from kabar.config import Config, ConfigError

log = logging.getLogger(__name__)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class ConfigWatcher:
    def __init__(self, config: Config, apply: Callable[[Config], object]) -> None:
        self.config = config
        self.path = config.path
        self.apply = apply
        self._seen = _signature(self.path)
        self.requested = False  # SIGHUP came

    def request(self) -> None:
        """From the SIGHUP handler: reload at the next poll, whatever the file's time."""
        self.requested = True

    async def poll(self) -> None:
        signature = _signature(self.path)
        if not self.requested and signature == self._seen:
            return
        why = "SIGHUP" if self.requested else "the file changed"
        self.requested = False
        self._seen = signature
        self.reload(why)

    def reload(self, why: str) -> bool:
        try:
            new = config_module.load(self.path)
        except ConfigError as exc:
            log.error("config %s not reloaded (%s): keeping the running config", self.path, why)
            for problem in exc.problems:
                log.error("%s", problem)
            return False
        if new == self.config:
            log.info("config %s reloaded (%s): no change", self.path, why)
            return True
        self.apply(new)
        self.config = new
        log.info("config %s reloaded (%s)", self.path, why)
        return True
