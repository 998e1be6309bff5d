"""The store the web app's operations routes share, opened on first use: the app may start
(and answer /healthz) before the database is up."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from kabar.config import Config
from kabar.store import Store


class SharedStore:
    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self._store = store
        self._owned = store is None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.config.database_url)
            return self._store

    def engine(self) -> Engine:
        return self.store.engine

    def close(self) -> None:
        with self._lock:
            if self._store is not None and self._owned:
                self._store.close()
                self._store = None
