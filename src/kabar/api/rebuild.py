"""Feed rebuilds after API posts, debounced: a burst of posts is one rebuild (or a few),
not one per request. A post marks the feeds its source feeds; a thread rebuilds them once
no post came for `delay`, or `max_wait` after the first unbuilt post, whichever is first,
so a steady stream of posts still reaches the feeds. Builds are incremental: build_feeds
renders only the feeds whose newest articles changed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Build = Callable[[list[str]], None]


class FeedRebuilder:
    def __init__(self, build: Build, *, delay: float, max_wait: float | None = None) -> None:
        self.build = build
        self.delay = delay
        self.max_wait = max_wait if max_wait is not None else max(5 * delay, 2.0)
        self._pending: set[str] = set()
        self._first = self._last = 0.0
        self._building = False
        self._closing = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self.builds = 0  # how many rebuilds ran (bench, tests)

    def request(self, feed_ids: Iterable[str]) -> None:
        chosen = set(feed_ids)
        if not chosen:
            return
        with self._condition:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending |= chosen
            self._last = now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="feed-rebuild", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def _due_in(self, now: float) -> float:
        return min(self._last + self.delay, self._first + self.max_wait) - now

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._closing and (
                    not self._pending or self._due_in(time.monotonic()) > 0
                ):
                    wait = self._due_in(time.monotonic()) if self._pending else None
                    self._condition.wait(wait)
                if not self._pending:
                    return  # closing, nothing left
                chosen = sorted(self._pending)
                self._pending.clear()
                self._building = True
            try:
                self.build(chosen)
            except Exception:
                log.exception("rebuilding feeds %s after API posts", ", ".join(chosen))
            finally:
                with self._condition:
                    self._building = False
                    self.builds += 1
                    self._condition.notify_all()

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is pending or building; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending or self._building:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Build what is pending now, then stop."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
