"""One list+watch of the namespace's EdgeDevices feeding the View: the only way the gateway reads devices.

List, then watch from the list's resourceVersion (bookmarks keep it fresh); when the watch ends, watch again from
the last version seen; on 410 Gone, list again. Events go to the event loop with call_soon_threadsafe, in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from bmfleet.gateway.kube import GoneError, Kube
from bmfleet.gateway.view import View

log = logging.getLogger(__name__)


class Watcher:
    def __init__(
        self,
        kube: Kube,
        view: View,
        loop: asyncio.AbstractEventLoop,
        watch_timeout: int = 300,
        on_relist: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.loop = loop
        self.watch_timeout = watch_timeout
        self.on_relist = on_relist
        self.stopping = threading.Event()
        self._resp: list[Any] = []
        self._pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._scheduled = threading.Event()
        self.thread = threading.Thread(target=self._run, name="edgedevice-watch", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for resp in self._resp:
            with contextlib.suppress(Exception):
                resp.shutdown()
        self.thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                rv = self._list()
                while not self.stopping.is_set():
                    rv = self._watch(rv)
                    failures = 0
            except GoneError:
                log.info("watch: resourceVersion expired, listing again")
            except Exception as e:
                if self.stopping.is_set():
                    return
                failures += 1
                log.warning("watch failed (%s); retrying", type(e).__name__ + ": " + str(e)[:200])
                self.stopping.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _list(self) -> str:
        items, rv = self.kube.list_devices()
        self.loop.call_soon_threadsafe(self.view.replace, items, rv)
        if self.on_relist is not None:
            self.on_relist()
        return rv

    def _watch(self, rv: str) -> str:
        for kind, obj in self.kube.watch_devices(rv, self.watch_timeout, self._resp):
            if self.stopping.is_set():
                break
            rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._pending.append((kind, obj))
                if not self._scheduled.is_set():  # one wake-up of the loop per burst, not per event
                    self._scheduled.set()
                    self.loop.call_soon_threadsafe(self._drain)
        return rv

    def _drain(self) -> None:
        self._scheduled.clear()
        while self._pending:
            self.view.apply(*self._pending.popleft())
