"""The EdgeDevices the rollout controller plans with: one paginated list at start, then kept by the watch.

Not a kopf index: kopf starts every indexed object's worker at once and each waits for the whole index, woken on
every object indexed, so N devices cost N^2 wake-ups before the first handler runs (a 10,000-device fleet: many
minutes; a fleet above the worker limit: never, nolar/kopf#1243). This cache is filled before kopf lists
anything (a startup handler), so every watch event it applies afterwards is newer than what it holds.
Kopf-free."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bmfleet.api.common import GROUP, VERSION
from bmfleet.controllers.kube import Kube
from bmfleet.controllers.rollouts import DEVICES, device_view

PAGE = 500  # devices per list request: bounded responses for the API server and for us


class FleetCache:
    """Device views by namespace and name. Thread-safe: watch events arrive on the event loop, passes read it
    from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, dict[str, dict[str, Any]]] = {}

    def load(self, kube: Kube, namespaces: list[str]) -> int:
        """List every EdgeDevice (the given namespaces, else the cluster), a page at a time; how many."""
        count, targets = 0, list[str | None](namespaces) if namespaces else [None]
        for namespace in targets:
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": PAGE, **({"_continue": token} if token else {})}
                if namespace is None:
                    page = kube.custom.list_cluster_custom_object(GROUP, VERSION, DEVICES, **kwargs)
                else:
                    page = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, DEVICES, **kwargs)
                for obj in page.get("items") or []:
                    self.apply("ADDED", obj)
                    count += 1
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return count

    def apply(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (or a listed object): keep its view, or forget it when deleted."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        with self._lock:
            if event_type == "DELETED":
                self._devices.get(namespace, {}).pop(name, None)
            else:
                self._devices.setdefault(namespace, {})[name] = device_view(body)

    def forget(self, namespace: str, name: str) -> None:
        """A device the API server says is gone (404 on a write) although no delete event reached us."""
        with self._lock:
            self._devices.get(namespace, {}).pop(name, None)

    def devices(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._devices.get(namespace, {}).values())

    def by_state_and_chip(self) -> Counter[tuple[str, str]]:
        """For the bmfleet_fleet_devices gauge."""
        out: Counter[tuple[str, str]] = Counter()
        with self._lock:
            for devices in self._devices.values():
                for d in devices.values():
                    state = "Ready" if d.get("ready") else "Online" if d.get("online") else "Offline"
                    out[(state, str(d.get("chip")))] += 1
        return out
