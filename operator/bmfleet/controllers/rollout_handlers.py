"""kopf handlers for rollouts: every trigger (rollout created, changed, resumed, a timer while work is in
flight, a device or the rollout's build changed) runs the same level-based `reconcile_rollout`. Devices come
from a kopf index, so a device report costs no list call; bursts of reports for one rollout are coalesced."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import kopf

from bmfleet.api.common import GROUP, VERSION
from bmfleet.api.conditions import READY, RECONCILING, get_condition, is_true
from bmfleet.api.rollout import LabelSelector
from bmfleet.controllers import metrics
from bmfleet.controllers.kube import BUILDS, Kube
from bmfleet.controllers.publish import ROLLOUTS
from bmfleet.controllers.rollouts import DEVICES, Reconciled, device_view, reconcile_rollout
from bmfleet.pipeline.selectors import selects

TIMER_SECONDS = 3.0
PASS_INTERVAL = 0.5  # seconds between two passes of one rollout while device events keep coming

_guard = threading.Lock()
_running: set[tuple[str, str]] = set()
_pending: set[tuple[str, str]] = set()


def coalesced(key: tuple[str, str], fn: Callable[[], object], min_interval: float = PASS_INTERVAL) -> None:
    """Run `fn` unless a run for `key` is in progress; then that run goes once more when it is done, and no
    sooner than `min_interval` after its own start. A burst of device events costs at most two passes per rollout
    and a steady stream (a thousand agents reporting) at most one pass per interval; two passes of one rollout
    never run at once."""
    with _guard:
        if key in _running:
            _pending.add(key)
            return
        _running.add(key)
    try:
        while True:
            started = time.monotonic()
            fn()
            with _guard:
                if key not in _pending:
                    break
                _pending.discard(key)
            time.sleep(max(0.0, started + min_interval - time.monotonic()))
    finally:
        with _guard:
            _running.discard(key)
            _pending.discard(key)


# The indexers are async: they only reduce the body, and as sync handlers every device's event would queue on
# the executor's threads (10,000 of them at start).
@kopf.index(GROUP, VERSION, DEVICES)
async def fleet_devices(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    """EdgeDevices by namespace, reduced to what planning and patching need."""
    return {namespace or "": device_view(body)}


@kopf.index(GROUP, VERSION, ROLLOUTS)
async def fleet_rollouts(
    spec: kopf.Spec, status: kopf.Status, name: str, namespace: str | None, **_: Any
) -> dict[str, dict[str, Any]]:
    """Rollouts by namespace: which devices and which build each one watches, and its device counts."""
    try:
        selector: LabelSelector | None = LabelSelector.model_validate(spec.get("selector") or {})
    except ValueError:
        selector = None
    build = (spec.get("artifact") or {}).get("build")
    counts = dict(status.get("counts") or {})
    return {namespace or "": {"name": name, "selector": selector, "build": build, "counts": counts}}


def _gauges(devices: kopf.Index[str, dict[str, Any]], rollouts: kopf.Index[str, dict[str, Any]]) -> None:
    """bmfleet_rollout_devices and bmfleet_fleet_devices, from the indexes (no API call)."""
    per_state: Counter[str] = Counter()
    for ns in list(rollouts):
        for rollout in list(rollouts.get(ns, [])):
            per_state.update({k: int(v) for k, v in rollout["counts"].items() if k not in ("selected", "targeted")})
    metrics.set_rollout_devices(per_state)
    fleet: Counter[tuple[str, str]] = Counter()
    for ns in list(devices):
        for d in list(devices.get(ns, [])):
            state = "Ready" if d.get("ready") else "Online" if d.get("online") else "Offline"
            fleet[(state, str(d.get("chip")))] += 1
    metrics.set_fleet_devices(fleet)


def _success(_: None) -> str:
    return "success"


@metrics.timed("bmodelrollout", _success)
def _reconcile(memo: kopf.Memo, namespace: str | None, name: str, kwargs: dict[str, Any]) -> None:
    namespace = namespace or ""
    devices: kopf.Index[str, dict[str, Any]] = kwargs["fleet_devices"]
    rollouts: kopf.Index[str, dict[str, Any]] = kwargs["fleet_rollouts"]
    kube: Kube = memo.kube

    def run() -> None:
        others = [r["name"] for r in rollouts.get(namespace, [])]
        done = reconcile_rollout(kube, namespace, name, list(devices.get(namespace, [])), others)
        _gauges(devices, rollouts)
        if done is not None:
            _post_event(done)

    coalesced((namespace, name), run)


WARNINGS = ("Aborted", "RolledBack")


def _post_event(done: Reconciled) -> None:
    """An Event when the phase changes (not on every pass), with the Ready condition's words."""
    phase = done.status.get("phase")
    if not phase or phase == done.old.get("phase"):
        return
    ready: dict[str, Any] = get_condition(list(done.status.get("conditions") or []), READY) or {}
    body = kopf.Body(cast(kopf.RawBody, done.body))
    kopf.event(
        body, type="Warning" if phase in WARNINGS else "Normal", reason=phase, message=ready.get("message", "")[:1024]
    )


@kopf.on.resume(GROUP, VERSION, ROLLOUTS)
@kopf.on.create(GROUP, VERSION, ROLLOUTS, backoff=3)
@kopf.on.update(GROUP, VERSION, ROLLOUTS, backoff=3)
def bmodelrollout_reconcile(name: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """Created, spec or annotations (bmfleet.io/promote) changed, or the operator (re)started."""
    _reconcile(memo, namespace, name, kwargs)


def _in_flight(status: kopf.Status, **_: Any) -> bool:
    return not status.get("conditions") or is_true(list(status.get("conditions") or []), RECONCILING)


@kopf.timer(GROUP, VERSION, ROLLOUTS, interval=TIMER_SECONDS, when=_in_flight)
def bmodelrollout_tick(name: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """Time passes while work is in flight: pauses end, devices time out, builds finish."""
    _reconcile(memo, namespace, name, kwargs)


@kopf.on.event(GROUP, VERSION, DEVICES)
def edgedevice_changed(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A device registered, reported or was deleted: re-plan the rollouts that select it or hold its entries."""
    labels = dict(body.metadata.labels or {})
    holders = {m.get("rollout") for m in (body.get("spec", {}).get("desired") or {}).get("models") or []}
    for rollout in list(kwargs["fleet_rollouts"].get(namespace or "", [])):
        selector = rollout["selector"]
        if rollout["name"] in holders or (selector is not None and selects(selector, labels)):
            _reconcile(memo, namespace, rollout["name"], kwargs)


@kopf.on.event(GROUP, VERSION, BUILDS)
def build_changed(name: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A build changed (it may have become Ready): re-plan the rollouts that roll out its artifact."""
    for rollout in list(kwargs["fleet_rollouts"].get(namespace or "", [])):
        if rollout["build"] == name:
            _reconcile(memo, namespace, rollout["name"], kwargs)
