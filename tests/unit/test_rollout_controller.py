"""The rollout controller and publish against an in-memory API: what is written, guarded by resourceVersion,
merged on conflicts, and that a second pass on the same state writes nothing."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bmfleet.api.device import ASSIGNED_AT_ANNOTATION
from bmfleet.controllers.coalesce import Coalescer
from bmfleet.controllers.fleet import FleetCache
from bmfleet.controllers.publish import merge_patch, publish_rollout
from bmfleet.controllers.rollouts import WrittenDesired, desired_patch, device_view, reconcile_rollout, to_device

D = "sha256:" + "d" * 64
OLD = "sha256:" + "0" * 64


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


class FakeCustom:
    """CustomObjectsApi for one namespace: merge patches, resourceVersion preconditions, a write log."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.rv = 1
        self.conflict_once: set[str] = set()
        self.reads: list[tuple[str, str]] = []

    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", "ns")
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[(plural, meta["name"])] = body
        return body

    def get_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, name: str) -> dict[str, Any]:
        self.reads.append((plural, name))
        if (plural, name) not in self.objects:
            raise ApiException(status=404)
        return copy.deepcopy(self.objects[(plural, name)])

    def create_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, body: dict[str, Any]) -> Any:
        if (plural, body["metadata"]["name"]) in self.objects:
            raise ApiException(status=409)
        self.writes.append(("create", plural, body["metadata"]["name"]))
        return self.put(plural, body)

    def patch_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, name: str, patch: Any) -> Any:
        if (plural, name) not in self.objects:
            raise ApiException(status=404)
        obj = self.objects[(plural, name)]
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if name in self.conflict_once or (want and want != obj["metadata"]["resourceVersion"]):
            self.conflict_once.discard(name)
            raise ApiException(status=409)
        self.writes.append(("patch", plural, name))
        new = _merge(obj, patch)
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] += 1
        return self.put(plural, new)

    def patch_namespaced_custom_object_status(self, g: str, v: str, ns: str, plural: str, name: str, p: Any) -> Any:
        self.writes.append(("status", plural, name))
        return self.put(plural, _merge(self.objects[(plural, name)], p))


class FakeKube:
    def __init__(self) -> None:
        self.custom = FakeCustom()


def _device(i: int, chip: str = "BM1684") -> dict[str, Any]:
    return {
        "metadata": {"name": f"dev{i}", "labels": {"fleet": "a"}},
        "spec": {"chip": chip, "desired": {"version": 3, "models": [{"name": "cls", "action": "install",
                 "digest": OLD, "size": 1, "chip": chip, "uri": "file:///x", "rollout": "other"}]}},
        "status": {"models": [{"name": "det", "state": "Active", "activeDigest": OLD}],
                   "conditions": [{"type": "Online", "status": "True", "reason": "Heartbeat", "message": "",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    }  # fmt: skip


def _rollout(**spec: Any) -> dict[str, Any]:
    art = {"digest": D, "uri": "pvc://store/p/blobs/sha256/" + "d" * 64, "size": 5, "chip": "BM1684"}
    base = {"artifact": art, "modelName": "det", "selector": {"matchLabels": {"fleet": "a"}}}
    return {"metadata": {"name": "det"}, "spec": base | {"strategy": {"phases": [{"percent": 50}]}} | spec}


def _views(kube: FakeKube) -> list[dict[str, Any]]:
    return [device_view(o) for (plural, _), o in kube.custom.objects.items() if plural == "edgedevices"]


def _status(
    kube: FakeKube, views: list[dict[str, Any]] | None = None, written: WrittenDesired | None = None
) -> dict[str, Any] | None:
    devices = _views(kube) if views is None else views
    done = reconcile_rollout(kube, "ns", "det", devices, ["det"], written or WrittenDesired())  # type: ignore[arg-type]
    return done.status if done is not None else None


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    for i in range(4):
        k.custom.put("edgedevices", _device(i))
    k.custom.put("edgedevices", _device(9, chip="BM1684X"))
    k.custom.put("bmodelrollouts", _rollout())
    return k


def test_reconcile_writes_the_cohort_then_nothing(kube: FakeKube) -> None:
    status = _status(kube)
    assert status is not None and status["counts"]["skipped"] == 1 and status["counts"]["targeted"] == 2
    patched = sorted(n for op, plural, n in kube.custom.writes if plural == "edgedevices")
    assert len(patched) == 2 and "dev9" not in patched
    for name in patched:
        obj = kube.custom.objects[("edgedevices", name)]
        desired = obj["spec"]["desired"]
        assert desired["version"] == 4 and [m["name"] for m in desired["models"]] == ["cls", "det"]
        assert json.loads(obj["metadata"]["annotations"][ASSIGNED_AT_ANNOTATION]).keys() == {"det"}
    assert kube.custom.objects[("bmodelrollouts", "det")]["status"]["phase"] == "Progressing"
    kube.custom.writes.clear()
    _status(kube)
    assert kube.custom.writes == []  # level-based: the same state writes nothing


def test_stale_index_conflicts_are_merged_not_clobbered(kube: FakeKube) -> None:
    stale = _views(kube)
    # Another rollout wrote another model on every device after the index was read.
    for i in range(4):
        obj = kube.custom.objects[("edgedevices", f"dev{i}")]
        extra = {"name": "seg", "action": "install", "digest": OLD, "size": 1, "chip": "BM1684", "uri": "file:///s"}
        kube.custom.patch_namespaced_custom_object("", "", "ns", "edgedevices", f"dev{i}", {
            "spec": {"desired": {"version": 4, "models": [*obj["spec"]["desired"]["models"], extra]}}})  # fmt: skip
    _status(kube, stale)
    written = [
        o for (p, _), o in kube.custom.objects.items() if p == "edgedevices" and o["spec"]["desired"]["version"] == 5
    ]
    assert len(written) == 2
    for obj in written:
        assert [m["name"] for m in obj["spec"]["desired"]["models"]] == ["cls", "seg", "det"]


def test_passes_before_the_index_catches_up_do_not_write_again(kube: FakeKube) -> None:
    stale = _views(kube)  # the index as it stays until the watch delivers our writes
    written = WrittenDesired()
    first = _status(kube, stale, written)
    assert first is not None and first["counts"]["targeted"] == 2
    kube.custom.writes.clear()
    kube.custom.reads.clear()
    again = _status(kube, stale, written)
    assert kube.custom.writes == [] and [r for r in kube.custom.reads if r[0] == "edgedevices"] == []
    assert again is not None and again["counts"] == first["counts"]
    # Once the index has the write, it is the index's view again (ours is forgotten).
    cohort = sorted(_entries(kube))
    fresh = _views(kube)
    assert all(written.latest("ns", v) is v for v in fresh if v["name"] in cohort)
    # A device deleted and created again (new uid, version back to its start) is not masked by our old write.
    obj = kube.custom.objects[("edgedevices", cohort[0])]
    renewed = device_view(obj | {"metadata": {**obj["metadata"], "uid": "other"}, "spec": _device(0)["spec"]})
    written.remember("ns", device_view(obj))
    assert written.latest("ns", renewed) is renewed


def _entries(kube: FakeKube) -> dict[str, dict[str, Any]]:
    """Device -> its desired entry for model det."""
    out = {}
    for (plural, name), obj in kube.custom.objects.items():
        for m in (obj.get("spec") or {}).get("desired", {}).get("models") or []:
            if plural == "edgedevices" and m["name"] == "det":
                out[name] = m
    return out


def test_invalid_spec_and_missing_build_stall(kube: FakeKube) -> None:
    kube.custom.put("bmodelrollouts", _rollout(artifact={"build": "nope"}))
    status = _status(kube)
    assert status is not None
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "BuildNotFound"
    kube.custom.put("bmodelrollouts", _rollout(strategy={"phases": [{"percent": 500}]}))
    status = _status(kube)
    assert status is not None and next(c for c in status["conditions"] if c["type"] == "Stalled")["reason"] == (
        "InvalidSpec"
    )


def _build(phase: str, ready: str, stalled: str = "False", combine: bool = True) -> dict[str, Any]:
    cond = [
        {"type": "Ready", "status": ready, "reason": phase, "message": "m", "lastTransitionTime": "x"},
        {"type": "Stalled", "status": stalled, "reason": phase, "message": "m", "lastTransitionTime": "x"},
    ]
    status: dict[str, Any] = {"observedGeneration": 1, "phase": phase, "conditions": cond}
    if combine:
        status["combine"] = {"state": "Succeeded", "digest": D, "uri": "pvc://s/p/blobs/sha256/" + "d" * 64, "size": 9}
    publish = {"rollout": {"modelName": "det", "selector": {"matchLabels": {"fleet": "a"}}}}
    return {"metadata": {"name": "b"}, "spec": {"chip": "BM1684", "publish": publish}, "status": status}  # fmt: skip


def test_rollout_waits_for_the_build_then_uses_its_artifact(kube: FakeKube) -> None:
    kube.custom.put("bmodelrollouts", _rollout(artifact={"build": "b"}))
    kube.custom.put("bmodelbuilds", _build("Compiling", "False"))
    status = _status(kube)
    assert status is not None and next(c for c in status["conditions"] if c["type"] == "Reconciling")["reason"] == (
        "WaitingForBuild"
    )
    kube.custom.put("bmodelbuilds", _build("GateFailed", "False", stalled="True"))
    status = _status(kube)
    assert status is not None and next(c for c in status["conditions"] if c["type"] == "Stalled")["status"] == "True"
    kube.custom.put("bmodelbuilds", _build("Verified", "True"))
    status = _status(kube)
    assert status is not None and status["artifact"]["size"] == 9 and status["counts"]["targeted"] == 2


def test_publish_creates_owned_rollout_then_updates_it_and_refuses_foreign_ones(kube: FakeKube) -> None:
    build = kube.custom.put("bmodelbuilds", _build("Verified", "True"))
    kube.custom.objects.pop(("bmodelrollouts", "det"))
    status = publish_rollout(kube, build, build["status"])  # type: ignore[arg-type]
    published = next(c for c in status["conditions"] if c["type"] == "Published")
    assert published["status"] == "True" and D in published["message"]
    rollout = kube.custom.objects[("bmodelrollouts", "b")]
    assert rollout["metadata"]["ownerReferences"][0]["uid"] == build["metadata"]["uid"]
    assert rollout["spec"]["artifact"] == {"build": "b"} and rollout["spec"]["selector"] == {
        "matchLabels": {"fleet": "a"}
    }
    kube.custom.writes.clear()
    publish_rollout(kube, build, build["status"])  # type: ignore[arg-type]
    assert kube.custom.writes == []  # nothing changed
    build["spec"]["publish"]["rollout"]["selector"] = {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}
    publish_rollout(kube, build, build["status"])  # type: ignore[arg-type]
    assert kube.custom.objects[("bmodelrollouts", "b")]["spec"]["selector"] == {
        "matchExpressions": [{"key": "tier", "operator": "Exists", "values": []}]
    }
    kube.custom.put("bmodelrollouts", _rollout() | {"metadata": {"name": "b"}})  # made by someone else
    status = publish_rollout(kube, build, build["status"])  # type: ignore[arg-type]
    assert next(c for c in status["conditions"] if c["type"] == "Published")["reason"] == "RolloutNotOwned"


def test_publish_waits_for_ready_and_drops_its_condition_when_removed(kube: FakeKube) -> None:
    build = _build("Combining", "False", combine=False)
    status = publish_rollout(kube, build, build["status"])  # type: ignore[arg-type]
    assert next(c for c in status["conditions"] if c["type"] == "Published")["reason"] == "NotReady"
    build["spec"].pop("publish")
    assert all(c["type"] != "Published" for c in publish_rollout(kube, build, status)["conditions"])  # type: ignore[arg-type]


def test_desired_patch_and_device_view() -> None:
    view = device_view(_device(1) | {"metadata": {"name": "dev1", "resourceVersion": "7"}})
    entry = {"name": "cls", "action": "install", "digest": OLD, "size": 1, "chip": "BM1684", "uri": "file:///x",
             "rollout": "other", "generation": 9}  # fmt: skip
    assert desired_patch(view, entry, __import__("datetime").datetime(2026, 1, 1)) is None  # same request
    dev = to_device(view, "det")
    assert dev.online and dev.model == {"name": "det", "state": "Active", "activeDigest": OLD} and dev.desired is None


def test_merge_patch_removes_keys() -> None:
    assert merge_patch({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"x": 3}, "b": [2]}) == {
        "a": {"x": 3, "y": None},
        "b": [2],
    }


def test_coalesced_bursts_run_at_most_twice_and_spaced() -> None:
    passes = Coalescer(min_interval=0.3)
    starts: list[float] = []
    entered, release = threading.Event(), threading.Event()

    def slow_pass() -> None:
        starts.append(time.monotonic())
        if len(starts) == 1:
            entered.set()
            release.wait(10)

    first = threading.Thread(target=passes.run, args=(("ns", "det"), slow_pass))
    first.start()
    assert entered.wait(10)
    for i in range(50):  # a burst of device events while the first pass runs, some from the event loop
        (passes.request if i % 2 else passes.run)(("ns", "det"), slow_pass)
    release.set()
    first.join(10)
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.3
    done = threading.Event()
    passes.request(("ns", "det"), done.set)  # idle again: a request runs in the background at once
    assert done.wait(10)


class PagedCustom(FakeCustom):
    """Lists a page of `limit` objects at a time with a continue token, as the API server does."""

    def list_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, **kw: Any) -> dict[str, Any]:
        self.reads.append((plural, f"list {kw.get('_continue')}"))
        items = sorted((o for (p, _), o in self.objects.items() if p == plural), key=lambda o: o["metadata"]["name"])
        start = int(kw.get("_continue") or 0)
        end = start + kw["limit"]
        return {"items": items[start:end], "metadata": {"continue": str(end) if end < len(items) else None}}


def test_fleet_cache_pages_through_the_list_then_follows_events() -> None:
    kube = FakeKube()
    kube.custom = PagedCustom()
    for i in range(1203):
        kube.custom.put("edgedevices", _device(i))
    cache = FleetCache()
    assert cache.load(kube, ["ns"]) == 1203  # type: ignore[arg-type]
    assert [r for r in kube.custom.reads if r[0] == "edgedevices"] == [
        ("edgedevices", "list None"), ("edgedevices", "list 500"), ("edgedevices", "list 1000")]  # fmt: skip
    assert len(cache.devices("ns")) == 1203 and cache.devices("other") == []
    cache.apply("DELETED", {"metadata": {"namespace": "ns", "name": "dev7"}})
    changed = _device(8) | {"metadata": {"namespace": "ns", "name": "dev8", "labels": {"fleet": "b"}}}
    cache.apply("MODIFIED", changed)
    cache.forget("ns", "dev9")
    views = {v["name"]: v for v in cache.devices("ns")}
    assert len(views) == 1201 and "dev7" not in views and views["dev8"]["labels"] == {"fleet": "b"}
    assert cache.by_state_and_chip() == {("Online", "BM1684"): 1201}


def test_a_device_deleted_under_a_pass_is_reported_gone(kube: FakeKube) -> None:
    kube.custom.put("bmodelrollouts", _rollout(strategy={"phases": [{"percent": 100}]}))
    views = _views(kube)
    del kube.custom.objects[("edgedevices", "dev0")]  # the cache still has it
    gone: list[str] = []
    done = reconcile_rollout(kube, "ns", "det", views, ["det"], WrittenDesired(), gone.append)  # type: ignore[arg-type]
    assert done is not None and gone == ["dev0"]
    assert sorted(_entries(kube)) == ["dev1", "dev2", "dev3"]  # the others were still written
