"""kopf handlers for rollouts: every trigger (rollout created, changed, resumed, a timer while work is in
flight, a device or the rollout's build changed) runs the same level-based `reconcile_rollout`. Devices come
from the fleet cache (`fleet.FleetCache`), so a device report costs no list call; bursts of reports for one
rollout are coalesced into few passes."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, cast

import kopf

from bmfleet.api.common import GROUP, VERSION
from bmfleet.api.conditions import READY, RECONCILING, get_condition, is_true
from bmfleet.api.rollout import LabelSelector
from bmfleet.controllers import metrics
from bmfleet.controllers.coalesce import Coalescer
from bmfleet.controllers.fleet import FleetCache
from bmfleet.controllers.kube import BUILDS, Kube
from bmfleet.controllers.publish import ROLLOUTS
from bmfleet.controllers.rollouts import DEVICES, Reconciled, reconcile_rollout
from bmfleet.pipeline.selectors import selects

TIMER_SECONDS = 3.0
PASS_INTERVAL = 0.5  # seconds between two passes of one rollout while device events keep coming

FLEET = FleetCache()
PASSES = Coalescer(PASS_INTERVAL)
Rollouts = kopf.Index[str, dict[str, Any]]


@kopf.on.startup()
def load_fleet(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Every EdgeDevice into the cache before kopf starts watching (runs after `configure`, which it needs)."""
    count = FLEET.load(memo.kube, list(memo.get("namespaces") or []))
    logger.info(f"fleet cache: {count} EdgeDevices")


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


def _gauges(rollouts: Rollouts) -> None:
    """bmfleet_rollout_devices and bmfleet_fleet_devices, from the index and the cache (no API call)."""
    per_state: Counter[str] = Counter()
    for ns in list(rollouts):
        for rollout in list(rollouts.get(ns, [])):
            per_state.update({k: int(v) for k, v in rollout["counts"].items() if k not in ("selected", "targeted")})
    metrics.set_rollout_devices(per_state)
    metrics.set_fleet_devices(FLEET.by_state_and_chip())


def _success(_: None) -> str:
    return "success"


@metrics.timed("bmodelrollout", _success)
def _pass(kube: Kube, namespace: str, name: str, rollouts: Rollouts) -> None:
    others = [r["name"] for r in rollouts.get(namespace, [])]
    done = reconcile_rollout(
        kube, namespace, name, FLEET.devices(namespace), others, gone=partial(FLEET.forget, namespace)
    )
    _gauges(rollouts)
    if done is not None:
        _post_event(done)


def _reconcile(memo: kopf.Memo, namespace: str | None, name: str, kwargs: dict[str, Any]) -> None:
    """A pass now, in this handler's thread (kopf retries it if it raises)."""
    ns = namespace or ""
    PASSES.run((ns, name), partial(_pass, memo.kube, ns, name, kwargs["fleet_rollouts"]))


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
async def edgedevice_changed(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A device registered, reported or was deleted: into the cache, then a pass (in the background, coalesced)
    of the rollouts that select it or hold its entries. Async: ten thousand devices' events never queue on the
    handler threads."""
    FLEET.apply(event.get("type"), body)
    ns, rollouts = namespace or "", kwargs["fleet_rollouts"]
    labels = dict(body.metadata.labels or {})
    holders = {m.get("rollout") for m in (body.get("spec", {}).get("desired") or {}).get("models") or []}
    for rollout in list(rollouts.get(ns, [])):
        selector = rollout["selector"]
        if rollout["name"] in holders or (selector is not None and selects(selector, labels)):
            PASSES.request((ns, rollout["name"]), partial(_pass, memo.kube, ns, rollout["name"], rollouts))


@kopf.on.event(GROUP, VERSION, BUILDS)
def build_changed(name: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A build changed (it may have become Ready): re-plan the rollouts that roll out its artifact."""
    for rollout in list(kwargs["fleet_rollouts"].get(namespace or "", [])):
        if rollout["build"] == name:
            _reconcile(memo, namespace, rollout["name"], kwargs)
