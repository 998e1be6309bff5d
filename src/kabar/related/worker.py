"""Analysing and storing articles' terms in a second process.

A large ingest parses files and upserts articles on one core while this process analyses
the batch before on the other. One batch is in flight at a time, so memory stays bounded,
and a batch reaches the worker only after its articles are committed (its terms refer to
them). If the worker fails, the batch is analysed in the calling process instead: no
article goes without its terms.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from kabar.model import Article
from kabar.related.engine import RelatedEngine

log = logging.getLogger(__name__)

_engine: RelatedEngine | None = None  # the worker process's own engine


class TermsWorker:
    def __init__(self, database_url: str, fallback: RelatedEngine) -> None:
        self._fallback = fallback
        self._pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),  # no forked database connections
            initializer=_open,
            initargs=(database_url, fallback.site_language),
        )
        self._in_flight: tuple[Future[int], list[Article]] | None = None
        self._failed = False

    def add(self, articles: list[Article]) -> None:
        """Analyse and store these articles' terms in the worker; returns at once unless
        the batch before is still running."""
        self.wait()
        if self._failed:
            self._fallback.add(articles)
            return
        try:
            self._in_flight = (self._pool.submit(_add, articles), articles)
        except BrokenProcessPool as exc:
            self._fail(exc, articles)

    def wait(self) -> None:
        if self._in_flight is None:
            return
        future, articles = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except Exception as exc:  # the worker died or failed: do the batch here
            self._fail(exc, articles)

    def _fail(self, exc: Exception, articles: list[Article]) -> None:
        if not self._failed:
            log.warning("related: terms worker failed (%s); analysing here", exc)
        self._failed = True
        self._fallback.add(articles)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()

    def __enter__(self) -> TermsWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _open(database_url: str, site_language: str) -> None:
    from kabar.store import Store

    global _engine
    _engine = RelatedEngine(
        site_language=site_language, store=Store.open(database_url, run_migrations=False)
    )


def _add(articles: list[Article]) -> int:
    assert _engine is not None
    return _engine.add(articles)
