"""Rollouts on the real control plane with the operator running as its ServiceAccount. EdgeDevices are created
directly and their reports are written to status the way the gateway writes them; the test plays the devices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bmfleet.cli.devenv import OperatorProcess, kubectl, wait_for
from bmfleet.sandbox.controlplane import Sandbox

G, V = "bmfleet.io", "v1alpha1"
D = "sha256:" + "d" * 64
OLD = "sha256:" + "0" * 64
ARTIFACT = {"digest": D, "uri": "pvc://artifacts/builds/blobs/sha256/" + "d" * 64, "size": 4096, "chip": "BM1684"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Devices:
    """EdgeDevices of one namespace, and the gateway's side of them (status reports)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    def create(self, name: str, chip: str = "BM1684", **labels: str) -> None:
        body = {"apiVersion": f"{G}/{V}", "kind": "EdgeDevice", "metadata": {"name": name, "labels": labels},
                "spec": {"chip": chip}}  # fmt: skip
        self.custom.create_namespaced_custom_object(G, V, self.ns, "edgedevices", body)
        self.report(name, "Active", activeDigest=OLD)

    def report(self, name: str, state: str, **model: Any) -> None:
        online = {
            "type": "Online",
            "status": "True",
            "reason": "Heartbeat",
            "message": "",
            "lastTransitionTime": _now(),
        }
        status = {"lastSeen": _now(), "models": [{"name": "det", "state": state, **model}], "conditions": [online]}
        self.custom.patch_namespaced_custom_object_status(G, V, self.ns, "edgedevices", name, {"status": status})

    def all(self) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(G, V, self.ns, "edgedevices")["items"]
        return {o["metadata"]["name"]: o for o in items}

    def entries(self) -> dict[str, dict[str, Any]]:
        """Device -> its desired entry for model det."""
        out = {}
        for name, obj in self.all().items():
            for m in ((obj.get("spec") or {}).get("desired") or {}).get("models") or []:
                if m["name"] == "det":
                    out[name] = m
        return out

    def play(self, outcome: Callable[[str], str] = lambda _: "Active") -> list[str]:
        """Every device answers the request it holds, as its agent would (outcome: Active or Failed)."""
        done = []
        for name, entry in sorted(self.entries().items()):
            if entry.get("action") == "rollback":
                self.report(name, "RolledBack", activeDigest=entry.get("digest"), desiredDigest=entry.get("digest"))
            elif outcome(name) == "Failed":
                self.report(name, "Failed", reason="ProbeFailed", desiredDigest=D, activeDigest=OLD)
            else:
                self.report(name, "Active", activeDigest=D, desiredDigest=D, previousDigest=OLD)
            done.append(name)
        return done

    def rollout(self, name: str, **spec: Any) -> dict[str, Any]:
        base = {"artifact": ARTIFACT, "modelName": "det", "selector": {"matchLabels": {"fleet": "a"}}}
        body = {"apiVersion": f"{G}/{V}", "kind": "BModelRollout", "metadata": {"name": name}, "spec": base | spec}
        out: dict[str, Any] = self.custom.create_namespaced_custom_object(G, V, self.ns, "bmodelrollouts", body)
        return out

    def events(self, rollout: str) -> dict[str, str]:
        """Event reason -> type, for one rollout."""
        selector = f"involvedObject.kind=BModelRollout,involvedObject.name={rollout}"
        return {e.reason: e.type for e in self.core.list_namespaced_event(self.ns, field_selector=selector).items}

    def status(self, name: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(G, V, self.ns, "bmodelrollouts", name)
        st: dict[str, Any] = body.get("status") or {}
        return st if st.get("observedGeneration") == body["metadata"]["generation"] else {}

    def wait(
        self, name: str, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        return wait_for(lambda: st if (st := self.status(name)) and check(st) else None, timeout, f"{name}: {what}")


@pytest.fixture
def devices(api: client.ApiClient, namespace: str) -> Devices:
    return Devices(api, namespace)


def _phase(st: dict[str, Any], phase: str, index: int, targeted: int) -> bool:
    return (st.get("phase"), st.get("currentPhase"), st["counts"]["targeted"]) == (phase, index, targeted)


def test_phases_advance_10_50_100_and_other_chips_are_skipped(
    devices: Devices, operator: OperatorProcess, sandbox: Sandbox, namespace: str
) -> None:
    for i in range(20):
        devices.create(f"se5-{i:02d}", fleet="a")
    for i in range(3):
        devices.create(f"se7-{i}", chip="BM1684X", fleet="a")
    devices.create("elsewhere", fleet="b")
    devices.rollout("det")

    history = []
    for index, targeted in ((0, 2), (1, 10), (2, 20)):
        st = devices.wait("det", f"phase {index}", lambda s, i=index, t=targeted: _phase(s, "Progressing", i, t))
        entries = devices.entries()
        assert len(entries) == targeted and all(n.startswith("se5-") for n in entries)  # only the cohort
        assert st["counts"]["selected"] == 23 and st["counts"]["skipped"] == 3
        history.append(set(entries))
        devices.play()
    assert history[0] < history[1] < history[2]  # cohorts grow; nobody is unassigned
    st = devices.wait("det", "Completed", lambda s: s.get("phase") == "Completed" and s["counts"]["active"] == 20)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    objs = devices.all()
    assert all(objs[f"se7-{i}"]["spec"].get("desired") is None for i in range(3))  # never a BM1684 bmodel
    assert objs["elsewhere"]["spec"].get("desired") is None
    assert {objs[n]["spec"]["desired"]["version"] for n in history[2]} == {1}  # each written exactly once
    entry = devices.entries()["se5-00"]
    assert {k: entry[k] for k in ("action", "digest", "size", "chip", "uri", "rollout")} == {
        "action": "install", **ARTIFACT, "rollout": "det"}  # fmt: skip

    header, row = kubectl(sandbox, "get", "bmr", "-n", namespace).strip().splitlines()
    assert header.split()[:6] == ["NAME", "PHASE", "CURRENT", "PHASE", "ACTIVE", "FAILED"]
    assert row.split()[:6] == ["det", "Completed", "2", "20", "0", "3"]

    devices.create("se5-late", fleet="a")  # a late joiner gets the release at once
    wait_for(lambda: devices.entries().get("se5-late"), 20, "the late joiner's entry")


def test_operator_starting_with_more_devices_than_workers_rolls_out(
    devices: Devices, operator: OperatorProcess
) -> None:
    """kopf gives each object a worker that, after indexing, waits until every object is indexed; with a worker
    limit below the fleet size the operator used to hang at start (nolar/kopf#1243). 100 devices exist (plus
    whatever earlier tests left) before it starts."""
    for i in range(100):
        devices.create(f"se5-{i:03d}", fleet="a")
    operator.stop()
    try:
        devices.rollout("det", strategy={"phases": [{"percent": 100}], "maxInFlight": 100})
    finally:
        operator.start()
    devices.wait("det", "all 100 targeted", lambda s: _phase(s, "Progressing", 0, 100), timeout=90)
    assert len(devices.entries()) == 100


def test_failures_above_threshold_abort_and_roll_back(devices: Devices, operator: OperatorProcess) -> None:
    for i in range(20):
        devices.create(f"se5-{i:02d}", fleet="a")
    devices.rollout("det", strategy={"phases": [{"percent": 50}, {"percent": 100}],
                                     "abort": {"maxFailurePercent": 10, "minDevices": 5}})  # fmt: skip
    devices.wait("det", "first cohort", lambda s: _phase(s, "Progressing", 0, 10))
    cohort = sorted(devices.entries())
    failing = set(cohort[:2])  # 2 of 10 = 20% > 10%
    devices.play(lambda n: "Failed" if n in failing else "Active")
    st = devices.wait("det", "Aborted", lambda s: s.get("phase") == "Aborted")
    assert {c["type"]: c["status"] for c in st["conditions"]}["Aborted"] == "True"
    entries = wait_for(
        lambda: e if len(e := devices.entries()) == 10 and all(x["action"] == "rollback" for x in e.values()) else None,
        20,
        "rollback entries for the whole cohort",
    )
    assert sorted(entries) == cohort and all(e.get("digest") == OLD for e in entries.values())
    devices.play()
    st = devices.wait("det", "RolledBack", lambda s: s.get("phase") == "RolledBack")
    assert st["counts"]["rolledBack"] == 10
    assert {c["type"]: c["status"] for c in st["conditions"]}["Stalled"] == "True"
    assert len(devices.entries()) == 10  # the other half never got the bad model
    events = wait_for(
        lambda: e if {"Aborted", "RolledBack"} <= (e := devices.events("det")).keys() else None, 15, "the Events"
    )
    assert events["Aborted"] == events["RolledBack"] == "Warning"


def test_manual_pause_waits_for_promotion(devices: Devices, operator: OperatorProcess) -> None:
    for i in range(4):
        devices.create(f"se5-{i}", fleet="a")
    devices.rollout("det", strategy={"phases": [{"percent": 50, "pause": {"manual": True}}, {"percent": 100}]})
    devices.wait("det", "first cohort", lambda s: _phase(s, "Progressing", 0, 2))
    devices.play()
    st = devices.wait("det", "Paused", lambda s: s.get("phase") == "Paused")
    assert "rollouts.bmfleet.io/promote=1" in next(c for c in st["conditions"] if c["type"] == "Ready")["message"]
    assert len(devices.entries()) == 2
    devices.custom.patch_namespaced_custom_object(
        G, V, devices.ns, "bmodelrollouts", "det", {"metadata": {"annotations": {"rollouts.bmfleet.io/promote": "1"}}}
    )
    devices.wait("det", "second phase", lambda s: _phase(s, "Progressing", 1, 4))


INVALID = {
    "percent and count": ({"strategy": {"phases": [{"percent": 10, "count": 3}]}}, "exactly one of percent or count"),
    "decreasing phases": ({"strategy": {"phases": [{"percent": 50}, {"percent": 10}]}}, "must not decrease"),
    "build and digest": ({"artifact": {"build": "b", "digest": D}}, "set either build, or all of"),
    "digest without uri": ({"artifact": {"digest": D, "size": 1, "chip": "BM1684"}}, "set either build, or all of"),
    "In without values": (
        {"selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}},
        "In and NotIn need values",
    ),
    "seconds and manual": (
        {"strategy": {"phases": [{"percent": 100, "pause": {"seconds": 5, "manual": True}}]}},
        "set seconds or manual",
    ),
    "bad model name": ({"modelName": "Det/1"}, "spec.modelName"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_rollouts_are_refused(devices: Devices, case: str) -> None:
    spec, message = INVALID[case]
    with pytest.raises(ApiException) as err:
        devices.rollout("bad", **spec)
    assert err.value.status == 422 and message in str(err.value.body)


def test_publish_needs_a_store(devices: Devices) -> None:
    from tests.integration.conftest import sample

    body = sample("pub", publish={"rollout": {"modelName": "det", "selector": {}}})
    with pytest.raises(ApiException) as err:
        devices.custom.create_namespaced_custom_object(G, V, devices.ns, "bmodelbuilds", body)
    assert err.value.status == 422 and "publish rolls out the combined bmodel" in str(err.value.body)
