"""BModelRollout controller: gather the inputs of `pipeline.rollout.plan` (the rollout, its artifact, the devices
from the fleet cache), then write what the plan changed: EdgeDevice desired entries first, the status last.
Kopf-free; the handlers are in `rollout_handlers`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from bmfleet.api.common import GROUP, VERSION
from bmfleet.api.conditions import READY, STALLED, get_condition
from bmfleet.api.device import ASSIGNED_AT_ANNOTATION
from bmfleet.api.rollout import PROMOTE_ANNOTATION, BModelRolloutSpec
from bmfleet.controllers.builds import status_changed
from bmfleet.controllers.kube import BUILDS, Kube, get_object
from bmfleet.controllers.publish import ROLLOUTS
from bmfleet.pipeline.rollout import Artifact, Device, RolloutRef, format_time, parse_time, plan
from bmfleet.pipeline.rollout_status import unresolved_status

DEVICES = "edgedevices"


@dataclass(frozen=True)
class Unresolved:
    """Why there is no artifact to roll out yet: stalled (needs a fix) or waiting (will resolve by itself)."""

    stalled: bool
    reason: str
    message: str


def resolve_artifact(kube: Kube, namespace: str, spec: BModelRolloutSpec) -> Artifact | Unresolved:
    """The artifact given directly, or a BModelBuild's combined bmodel once the build is Ready."""
    ref = spec.artifact
    if ref.build is None:
        return Artifact(str(ref.digest), str(ref.uri), int(ref.size or 0), str(ref.chip))
    build = get_object(kube, namespace, BUILDS, ref.build)
    if build is None:
        return Unresolved(True, "BuildNotFound", f"BModelBuild {ref.build} not found in namespace {namespace}")
    status = build.get("status") or {}
    conds = status.get("conditions") or []
    ready, stalled = get_condition(conds, READY) or {}, get_condition(conds, STALLED) or {}
    current = status.get("observedGeneration") == build["metadata"].get("generation")
    if current and stalled.get("status") == "True":
        return Unresolved(True, "BuildFailed", f"BModelBuild {ref.build}: {ready.get('message', 'stalled')}")
    if not (current and ready.get("status") == "True"):
        return Unresolved(False, "WaitingForBuild", f"BModelBuild {ref.build} is {status.get('phase') or 'pending'}")
    combine = status.get("combine") or {}
    if not (combine.get("digest") and combine.get("uri") and combine.get("size")):
        why = f"BModelBuild {ref.build} is Ready but stored no combined bmodel (set its spec.output.store)"
        return Unresolved(True, "NoArtifact", why)
    chip = str((build.get("spec") or {}).get("chip") or "BM1684")
    pushed = status.get("publish")
    if pushed is not None:  # the build pushes to a registry: devices get the pushed blob, once it is there
        if pushed.get("state") != "Succeeded" or not pushed.get("uri"):
            return Unresolved(False, "WaitingForPublish", f"BModelBuild {ref.build} is pushing to its registry")
        return Artifact(str(combine["digest"]), str(pushed["uri"]), int(combine["size"]), chip)
    return Artifact(str(combine["digest"]), str(combine["uri"]), int(combine["size"]), chip)


def device_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the fleet cache keeps per EdgeDevice: enough to plan and to patch (resourceVersion)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    online = get_condition(list(status.get("conditions") or []), "Online") or {}
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
        "labels": dict(meta.get("labels") or {}),
        "assignedAt": (meta.get("annotations") or {}).get(ASSIGNED_AT_ANNOTATION),
        "chip": spec.get("chip"),
        "desired": spec.get("desired") or {},
        "models": list(status.get("models") or []),
        "online": online.get("status") == "True",
        "ready": (get_condition(list(status.get("conditions") or []), "Ready") or {}).get("status") == "True",
        "onlineSince": online.get("lastTransitionTime") if online.get("status") == "True" else None,
    }


def _assigned(view: Mapping[str, Any]) -> dict[str, str]:
    try:
        value = json.loads(view.get("assignedAt") or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def to_device(view: Mapping[str, Any], model: str) -> Device:
    """A cached EdgeDevice as the planner sees it, for one model name."""
    return Device(
        name=str(view["name"]),
        chip=str(view.get("chip") or ""),
        labels=view.get("labels") or {},
        online=bool(view.get("online")),
        model=next((m for m in view.get("models") or [] if m.get("name") == model), None),
        desired=next((m for m in (view.get("desired") or {}).get("models") or [] if m.get("name") == model), None),
        assigned_at=parse_time(_assigned(view).get(model)),
        online_since=parse_time(view.get("onlineSince")),
    )


def desired_patch(view: Mapping[str, Any], entry: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Merge patch that puts `entry` into spec.desired (version bumped) and stamps its assignment time, guarded
    by resourceVersion (the whole models list is replaced). None when the device already holds that request."""
    desired = view.get("desired") or {}
    models = list(desired.get("models") or [])
    old = next((m for m in models if m.get("name") == entry["name"]), None)
    if old is not None and all(old.get(k) == entry.get(k) for k in entry if k != "generation"):
        return None
    models = [entry if m.get("name") == entry["name"] else m for m in models] + ([] if old else [entry])
    assigned = _assigned(view) | {entry["name"]: format_time(now)}
    return {
        "metadata": {
            "resourceVersion": view.get("resourceVersion"),
            "annotations": {ASSIGNED_AT_ANNOTATION: json.dumps(assigned, sort_keys=True)},
        },
        "spec": {"desired": {"version": int(desired.get("version") or 0) + 1, "models": models}},
    }


class DeviceGoneError(Exception):
    """The EdgeDevice was deleted (the planner's view still had it)."""


def write_desired(
    kube: Kube, namespace: str, view: Mapping[str, Any], entry: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    """Write one device's entry; on a conflict (another rollout wrote another model, or the device changed) read
    the device again and merge into what is there. Returns the device's view after the write, None if nothing
    was written; DeviceGoneError if the device no longer exists."""
    for _ in range(3):
        patch = desired_patch(view, entry, now)
        if patch is None:
            return None
        try:
            done = kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, DEVICES, str(view["name"]), patch
            )
            return device_view(done)
        except ApiException as exc:
            if exc.status == 404:
                raise DeviceGoneError(str(view["name"])) from None
            if exc.status != 409:
                raise
        fresh = get_object(kube, namespace, DEVICES, str(view["name"]))
        if fresh is None:
            raise DeviceGoneError(str(view["name"]))
        view = device_view(fresh)
    raise RuntimeError(f"EdgeDevice {view['name']}: spec.desired kept changing under us")


def _version(view: Mapping[str, Any]) -> int:
    return int((view.get("desired") or {}).get("version") or 0)


class WrittenDesired:
    """The devices as this operator last wrote their spec.desired. The fleet cache learns of our own writes only
    when their watch events arrive; a pass before that would see the old request, count the device as not yet
    assigned and patch it again with a stale resourceVersion (a 409, a GET and a no-op, per device per pass:
    thousands of requests in a large rollout). spec.desired.version only ever grows (we bump it on every write),
    so the newer of the cache's view and ours is the one with the higher version, for the same uid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str], dict[str, Any]] = {}

    def remember(self, namespace: str, view: dict[str, Any]) -> None:
        with self._lock:
            self._views[(namespace, str(view["name"]))] = view

    def latest(self, namespace: str, view: Mapping[str, Any]) -> Mapping[str, Any]:
        """Our written view while the cache is behind it; the cache's view (and forget ours) once it caught up."""
        key = (namespace, str(view["name"]))
        with self._lock:
            mine = self._views.get(key)
            if mine is None:
                return view
            if mine.get("uid") == view.get("uid") and _version(mine) > _version(view):
                return mine
            del self._views[key]
            return view


WRITTEN = WrittenDesired()


@dataclass(frozen=True)
class Reconciled:
    """The rollout as read, its status before and after the pass (for Events on transitions)."""

    body: dict[str, Any]
    old: dict[str, Any]
    status: dict[str, Any]


def reconcile_rollout(
    kube: Kube,
    namespace: str,
    name: str,
    devices: Iterable[Mapping[str, Any]],
    others: Iterable[str],
    written: WrittenDesired = WRITTEN,
    gone: Callable[[str], None] = lambda name: None,
) -> Reconciled | None:
    """One level-based pass; None if the rollout is gone. `gone` hears of devices deleted under the pass."""
    body = get_object(kube, namespace, ROLLOUTS, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    meta, old = body["metadata"], body.get("status") or {}
    generation, now = int(meta.get("generation") or 1), datetime.now(UTC).replace(microsecond=0)
    try:
        spec = BModelRolloutSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        detail = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        status = unresolved_status(old, generation, True, "InvalidSpec", detail)
    else:
        artifact = resolve_artifact(kube, namespace, spec)
        if isinstance(artifact, Unresolved):
            status = unresolved_status(old, generation, artifact.stalled, artifact.reason, artifact.message)
        else:
            views = {str(v["name"]): written.latest(namespace, v) for v in devices}
            ref = RolloutRef(name, str(meta.get("uid")), generation, _promote(meta), frozenset(others) - {name})
            planned = plan(spec, artifact, [to_device(v, spec.model_name) for v in views.values()], now, old, ref)
            for device, entry in sorted(planned.desired.items()):
                try:
                    if (after := write_desired(kube, namespace, views[device], entry, now)) is not None:
                        written.remember(namespace, after)
                except DeviceGoneError:
                    gone(device)  # counted in this pass's status still; the next pass no longer sees it
            status = planned.status
    if status_changed(old, status):
        try:
            kube.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, ROLLOUTS, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report to
                raise
            return None
    return Reconciled(body, old, status)


def _promote(meta: Mapping[str, Any]) -> int | None:
    value = str((meta.get("annotations") or {}).get(PROMOTE_ANNOTATION, "")).strip()
    return int(value) if value.isdigit() else None
