"""spec.publish: once a build is Ready (gates passed; combined when it has none) it creates the BModelRollout
its publish section describes, owned by the build, or updates it; the build's Published condition names the
rollout and the digest. The build controller calls `publish_rollout` last in each reconcile."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from bmfleet.api.build import Publish
from bmfleet.api.common import API_VERSION, GROUP, VERSION
from bmfleet.api.conditions import PUBLISHED, READY, Cond, get_condition, set_condition
from bmfleet.api.rollout import BModelRolloutSpec
from bmfleet.controllers.kube import BUILDS, Kube, get_object
from bmfleet.pipeline.names import LABEL_BUILD

ROLLOUTS = "bmodelrollouts"


def owner_reference(build: dict[str, Any]) -> dict[str, Any]:
    """The build as the rollout's controller: deleting the build deletes the rollout (not what devices run)."""
    meta = build["metadata"]
    return {"apiVersion": API_VERSION, "kind": "BModelBuild", "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def publish_rollout(kube: Kube, build: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """`status` with the Published condition set (removed when the build does not publish)."""
    conditions = list(status.get("conditions") or [])
    raw = (build.get("spec") or {}).get("publish")
    if not raw:
        return {**status, "conditions": [c for c in conditions if c.get("type") != PUBLISHED]}
    publish = Publish.model_validate(raw)
    if publish.rollout is None:
        return status  # a registry push only: the publish step set Published
    pushed = status.get("publish")
    if pushed is not None and pushed.get("state") != "Succeeded":
        return status  # the rollout waits for the registry push (Published=False says why)
    cond = _publish(kube, build, status, publish)
    generation = int(build["metadata"].get("generation") or 1)
    return {**status, "conditions": set_condition(conditions, cond, generation)}


def _publish(kube: Kube, build: dict[str, Any], status: dict[str, Any], publish: Publish) -> Cond:
    assert publish.rollout is not None
    ready = get_condition(list(status.get("conditions") or []), READY) or {}
    combine = status.get("combine") or {}
    if ready.get("status") != "True" or not combine.get("digest"):
        why = ready.get("reason") or "Pending"
        return Cond(PUBLISHED, "False", "NotReady", f"publishes once the build is Ready (now: {why})")
    meta = build["metadata"]
    ns, name = meta["namespace"], publish.rollout.name or meta["name"]
    spec = BModelRolloutSpec.model_validate(
        {"artifact": {"build": meta["name"]}, "modelName": publish.rollout.model_name,
         "selector": publish.rollout.selector.model_dump(by_alias=True, exclude_none=True),
         "strategy": publish.rollout.strategy.model_dump(by_alias=True, exclude_none=True)}
    )  # fmt: skip
    existing = get_object(kube, ns, ROLLOUTS, name)
    if existing is None:
        body = {
            "apiVersion": API_VERSION,
            "kind": "BModelRollout",
            "metadata": {
                "name": name,
                "labels": {LABEL_BUILD: meta["name"]},
                "ownerReferences": [owner_reference(build)],
            },
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        try:
            kube.custom.create_namespaced_custom_object(GROUP, VERSION, ns, ROLLOUTS, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = get_object(kube, ns, ROLLOUTS, name)
    if existing is not None:
        refused = _refuse(kube, build, existing)
        if refused is not None:
            return refused
        _update(kube, build, existing, spec)
    return Cond(PUBLISHED, "True", "Published", f"BModelRollout {name} rolls out {combine['digest']}")


def _refuse(kube: Kube, build: dict[str, Any], rollout: dict[str, Any]) -> Cond | None:
    """A rollout that no build controls is the user's; one a newer build controls is that build's."""
    meta, name = build["metadata"], rollout["metadata"]["name"]
    owner = next((o for o in rollout["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None or owner.get("kind") != "BModelBuild":
        message = f"BModelRollout {name} exists and no build controls it: delete it or set spec.publish.rollout.name"
        return Cond(PUBLISHED, "False", "RolloutNotOwned", message)
    if owner.get("uid") == meta["uid"]:
        return None
    other = get_object(kube, meta["namespace"], BUILDS, owner["name"])
    if other is None or other["metadata"].get("uid") != owner.get("uid"):
        return None  # its build is gone: take the rollout over
    theirs = (str(other["metadata"].get("creationTimestamp")), other["metadata"]["name"])
    if theirs > (str(meta.get("creationTimestamp")), meta["name"]):
        return Cond(PUBLISHED, "False", "Superseded", f"BModelRollout {name} publishes the newer build {owner['name']}")
    return None


def _update(kube: Kube, build: dict[str, Any], rollout: dict[str, Any], spec: BModelRolloutSpec) -> None:
    """Point the rollout at this build and its publish settings (spec.paused stays the user's)."""
    current = BModelRolloutSpec.model_validate(rollout.get("spec") or {})
    ref = owner_reference(build)
    owners = rollout["metadata"].get("ownerReferences") or []
    if current.model_copy(update={"paused": False}) == spec and owners == [ref]:
        return
    wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    old = {k: v for k, v in (rollout.get("spec") or {}).items() if k in wire}
    patch = {
        "metadata": {"resourceVersion": rollout["metadata"]["resourceVersion"], "ownerReferences": [ref]},
        "spec": merge_patch(old, wire),
    }
    name = rollout["metadata"]["name"]
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, build["metadata"]["namespace"], ROLLOUTS, name, patch)


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: keys only `old` has become null."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out = {k: None for k in old if k not in new}
    out.update({k: merge_patch(old.get(k), v) for k, v in new.items()})
    return out
