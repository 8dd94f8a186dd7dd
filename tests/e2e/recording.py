"""What the tests read from the API server while the fleet works: every EdgeDevice and BModelRollout change, in
the API server's order (a watch), reduced to assignments, device reports and rollout phases with their times."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from bmfleet.cli.devenv import wait_for
from bmfleet.sandbox.controlplane import Sandbox, close_client
from tests.e2e.support import MODEL, Fleet

G, V = "bmfleet.io", "v1alpha1"


class Recorder(threading.Thread):
    """List, then watch one plural (label-selected) in a thread, calling `on_event(t, obj)` for every change in the
    API server's order (`t`: time.monotonic() when it arrived)."""

    def __init__(self, sandbox: Sandbox, namespace: str, plural: str, on_event: Callable[[float, dict[str, Any]], None],
                 label_selector: str = "") -> None:  # fmt: skip
        super().__init__(name=f"watch-{plural}", daemon=True)
        self.sandbox, self.namespace, self.plural, self.selector = sandbox, namespace, plural, label_selector
        self.on_event = on_event
        self.stopping = threading.Event()
        self.error: Exception | None = None
        self.synced = threading.Event()

    def _list(self, custom: Any) -> str:
        out = custom.list_namespaced_custom_object(G, V, self.namespace, self.plural, label_selector=self.selector)
        for obj in out["items"]:
            self.on_event(time.monotonic(), obj)
        return str(out["metadata"]["resourceVersion"])

    def _watch(self, custom: Any, rv: str) -> str:
        """One watch request (ends after 2 s, so stop() is heard); returns the resourceVersion to go on from."""
        stream: Any = watch.Watch().stream(
            custom.list_namespaced_custom_object, G, V, self.namespace, self.plural,
            label_selector=self.selector, resource_version=rv, timeout_seconds=2, allow_watch_bookmarks=True,
        )  # fmt: skip
        for event in stream:
            obj = event["object"]
            if event["type"] == "ERROR":
                raise ApiException(status=obj.get("code"), reason=obj.get("message"))
            rv = obj["metadata"]["resourceVersion"]
            if event["type"] != "BOOKMARK":
                self.on_event(time.monotonic(), obj)
        return rv

    def run(self) -> None:
        api = self.sandbox.api_client()
        custom = client.CustomObjectsApi(api)
        try:
            rv = self._list(custom)
            self.synced.set()
            while not self.stopping.is_set():
                try:
                    rv = self._watch(custom, rv)
                except ApiException as e:
                    if e.status != 410:
                        raise
                    rv = self._list(custom)  # 410 Gone: start over from a fresh list
        except Exception as e:  # surfaced by stop()
            self.error = e
            self.synced.set()
        finally:
            close_client(api)

    def begin(self) -> Recorder:
        self.start()
        self.synced.wait(30)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)
        if self.error is not None:
            raise self.error


def desired_entry(obj: dict[str, Any], model: str = MODEL) -> dict[str, Any] | None:
    models = ((obj.get("spec") or {}).get("desired") or {}).get("models") or []
    return next((m for m in models if m.get("name") == model), None)


def model_status(obj: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    return next((m for m in (obj.get("status") or {}).get("models") or [] if m.get("name") == model), {})


def condition(obj: dict[str, Any], type_: str) -> str | None:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conds if c.get("type") == type_), None)


def _request(entry: dict[str, Any] | None) -> tuple[str, str | None] | None:
    return (entry.get("action") or "install", entry.get("digest")) if entry else None


@dataclass(frozen=True)
class Assignment:
    """A device got a new desired request; `holders` devices held that request already, `done` of them had
    finished it (Active on its digest) at that moment, as far as the API server's order of writes goes."""

    t: float
    device: str
    action: str
    digest: str | None
    holders: int
    done: int


class DeviceHistory:
    """Feed of a Recorder over EdgeDevices: every new desired request, and every (state, activeDigest) a device
    reported for the model, with times."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, dict[str, Any]] = {}
        self.assignments: list[Assignment] = []
        self.reports: dict[str, list[tuple[float, str, str | None]]] = {}

    def __call__(self, t: float, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self.lock:
            old = self.latest.get(name)
            self.latest[name] = obj
            request = _request(desired_entry(obj))
            if request is not None and request != _request(desired_entry(old) if old else None):
                holders = [o for n, o in self.latest.items() if n != name and _request(desired_entry(o)) == request]
                done = sum(1 for o in holders if _finished(o, request))
                self.assignments.append(Assignment(t, name, request[0], request[1], len(holders), done))
            st = model_status(obj)
            seen = (st.get("state"), st.get("activeDigest"))
            mine = self.reports.setdefault(name, [])
            if st and (not mine or mine[-1][1:] != seen):
                mine.append((t, *seen))  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.latest)

    def ran(self, device: str, digest: str) -> bool:
        """Did the device ever report `digest` as its active model?"""
        with self.lock:
            return any(active == digest for _, _, active in self.reports.get(device, []))


def _finished(obj: dict[str, Any], request: tuple[str, str | None]) -> bool:
    st = model_status(obj)
    return st.get("state") in ("Active", "RolledBack") and st.get("activeDigest") == request[1]


class RolloutHistory:
    """Feed of a Recorder over one BModelRollout: each distinct (artifact digest, phase, currentPhase) with the
    time first seen and the counts then, and the latest status."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.phases: list[tuple[float, str | None, str | None, int | None, dict[str, int]]] = []
        self.status: dict[str, Any] = {}

    def __call__(self, t: float, obj: dict[str, Any]) -> None:
        st = obj.get("status") or {}
        if obj["metadata"]["name"] != self.name or st.get("observedGeneration") != obj["metadata"]["generation"]:
            return
        self.status = st
        key = ((st.get("artifact") or {}).get("digest"), st.get("phase"), st.get("currentPhase"))
        if not self.phases or self.phases[-1][1:4] != key:
            self.phases.append((t, *key, dict(st.get("counts") or {})))

    def path(self, digest: str) -> list[tuple[str | None, int | None]]:
        """(phase, currentPhase) in the order the rollout went through them for one artifact."""
        return [(p, i) for _, d, p, i, _ in self.phases if d == digest]


def wait_registered(history: DeviceHistory, names: list[str], fleet: Fleet, timeout: float = 180) -> None:
    """Every agent registered (its EdgeDevice exists) and is Online, as the gateway reports it."""

    def check() -> bool:
        assert not fleet.dead(), f"agents exited: {fleet.dead()}"
        seen = history.snapshot()
        return all(n in seen and condition(seen[n], "Online") == "True" for n in names)

    wait_for(check, timeout, f"{len(names)} agents registered and online", interval=0.5)
