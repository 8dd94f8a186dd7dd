"""At most one pass per key at a time, and bursts folded into one more pass: what turns a thousand device reports
into a few rollout passes. Kopf-free."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Coalescer:
    """`run` a pass now in the caller's thread, or `request` one in the background; either way, while a pass
    for the key is in progress the request only marks it to go once more when done, no sooner than
    `min_interval` after its own start. So a burst costs at most two passes, a steady stream at most one pass
    per interval, and two passes of one key never overlap."""

    def __init__(self, min_interval: float, threads: int = 2) -> None:
        self.min_interval = min_interval
        self._guard = threading.Lock()
        self._running: set[Hashable] = set()
        self._pending: set[Hashable] = set()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="coalesced")

    def _claim(self, key: Hashable) -> bool:
        with self._guard:
            if key in self._running:
                self._pending.add(key)
                return False
            self._running.add(key)
            return True

    def run(self, key: Hashable, fn: Callable[[], object]) -> None:
        """Pass now in this thread (its exception reaches the caller, e.g. for kopf's retry), unless one runs."""
        if self._claim(key):
            self._drain(key, fn)

    def request(self, key: Hashable, fn: Callable[[], object]) -> None:
        """Pass soon on the coalescer's threads; never blocks (for handlers on the event loop)."""
        if self._claim(key):
            # The caller's context goes along: kopf finds its event-posting queue there (kopf.event).
            self._pool.submit(contextvars.copy_context().run, self._logged, key, fn)

    def _logged(self, key: Hashable, fn: Callable[[], object]) -> None:
        try:
            self._drain(key, fn)
        except Exception:  # the periodic timer passes again; nobody else would see this
            log.exception("background pass for %s failed", key)

    def _drain(self, key: Hashable, fn: Callable[[], object]) -> None:
        try:
            while True:
                started = time.monotonic()
                fn()
                with self._guard:
                    if key not in self._pending:
                        break
                    self._pending.discard(key)
                time.sleep(max(0.0, started + self.min_interval - time.monotonic()))
        finally:
            with self._guard:
                self._running.discard(key)
                self._pending.discard(key)
