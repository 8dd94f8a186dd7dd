"""`bmfleet status | logs | report` without a cluster: the table, the gate verdict, CRDs that are not installed,
and where a report lives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bmfleet.cli.status_cmd import CliError, gate_verdict, latest_pod, local_report, progress, status_text

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def build(name: str, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"shapes": [{"shape": "[1,3,8,8]"}, {"shape": "[4,3,8,8]"}]}
    if "gates" in status:
        spec["gates"] = {"classification": {}}
    meta = {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-01T11:58:30Z"}
    return {"metadata": meta, "spec": spec, "status": status}


class FakeCustom:
    """Serves the kinds it is given; anything else is a 404, as for a CRD that is not installed."""

    def __init__(self, builds: list[dict[str, Any]], **others: list[dict[str, Any]]) -> None:
        self.served = {"bmodelbuilds": builds, **others}

    def _items(self, plural: str) -> list[dict[str, Any]]:
        if plural not in self.served:
            raise ApiException(status=404, reason="Not Found")
        return self.served[plural]

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str) -> dict[str, Any]:
        return {"items": [i for i in self._items(plural) if i["metadata"]["namespace"] == ns]}

    def list_cluster_custom_object(self, group: str, version: str, plural: str) -> dict[str, Any]:
        return {"items": self._items(plural)}


def test_progress_bar() -> None:
    assert progress(0, 2) == "[..........] 0/2"
    assert progress(1, 2) == "[#####.....] 1/2"
    assert progress(2, 2) == "[##########] 2/2"
    assert progress(0, 0) == "[..........] 0/0"


def test_gate_verdicts() -> None:
    assert gate_verdict(build("a")) == "-"
    assert gate_verdict(build("a", gates={"state": "Running"})) == "running"
    checks = [{"passed": True}, {"passed": False}]
    assert gate_verdict(build("a", gates={"state": "Succeeded", "passed": False, "checks": checks})) == (
        "FAILED (1/2 checks)"
    )
    assert gate_verdict(build("a", gates={"state": "Succeeded", "passed": True, "checks": checks[:1]})) == "passed"
    assert gate_verdict(build("a", gates={"state": "Failed", "reason": "BadGateInput"})) == "error: BadGateInput"


def test_status_lists_builds_and_skips_kinds_the_cluster_does_not_serve() -> None:
    ready = {"type": "Ready", "status": "True"}
    done = build(
        "ssd300",
        phase="Verified",
        conditions=[ready],
        shapes=[{"state": "Succeeded"}, {"state": "Succeeded"}],
        gates={"state": "Succeeded", "passed": True, "checks": []},
    )
    fresh = build("new")
    fresh.pop("status")
    text = status_text(FakeCustom([done, fresh]), "ns", NOW)  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[0] == "builds:"
    assert lines[1].split() == ["NAME", "PHASE", "READY", "STAGES", "GATES", "AGE"]
    assert lines[2].split() == ["new", "-", "-", "[..........]", "0/2", "-", "1m"]
    assert lines[3].split() == ["ssd300", "Verified", "True", "[##########]", "2/2", "passed", "1m"]
    assert "rollouts" not in text and "devices" not in text
    everywhere = status_text(FakeCustom([done]), None, NOW).splitlines()  # type: ignore[arg-type]
    assert everywhere[1].split()[:2] == ["NAMESPACE", "NAME"] and everywhere[2].split()[:2] == ["ns", "ssd300"]
    assert status_text(FakeCustom([]), "other", NOW) == "builds: none\n"  # type: ignore[arg-type]


def test_report_paths(tmp_path: Path) -> None:
    assert local_report(None, "ns", f"file://{tmp_path}/r%201/report.html") == tmp_path / "r 1" / "report.html"  # type: ignore[arg-type]
    with pytest.raises(CliError, match="remote store"):
        local_report(None, "ns", "oci://registry.example/models/ssd300:report")  # type: ignore[arg-type]
    digest = "a" * 64
    with pytest.raises(CliError, match=f"oras blob fetch --output report.html r.example/m@sha256:{digest}"):
        local_report(None, "ns", f"oci://r.example/m@sha256:{digest}")  # type: ignore[arg-type]
    s3 = f"s3://bucket/p/blobs/sha256/{digest}?endpoint=https://s3.example"
    with pytest.raises(
        CliError, match=f"aws s3 cp --endpoint-url https://s3.example s3://bucket/p/blobs/sha256/{digest} "
    ):
        local_report(None, "ns", s3)  # type: ignore[arg-type]


def test_latest_pod_is_the_newest_of_the_step() -> None:
    def pod(name: str, minute: int) -> SimpleNamespace:
        return SimpleNamespace(metadata=SimpleNamespace(name=name, creation_timestamp=NOW.replace(minute=minute)))

    selectors: list[str] = []

    class Core:
        def list_namespaced_pod(self, ns: str, label_selector: str) -> SimpleNamespace:
            selectors.append(label_selector)
            return SimpleNamespace(items=[pod("b-compile-x-1", 5), pod("b-compile-x-2", 9)] if ns == "ns" else [])

    assert latest_pod(Core(), "ns", "b", "compile", 0) == "b-compile-x-2"  # type: ignore[arg-type]
    assert selectors[-1] == "bmfleet.io/build=b,bmfleet.io/step=compile,bmfleet.io/stage=0"
    with pytest.raises(CliError, match=r"no pods of build b \(gate\) in namespace other"):
        latest_pod(Core(), "other", "b", "gate", None)  # type: ignore[arg-type]


def test_rollouts_and_devices_where_served() -> None:
    meta = {"namespace": "ns", "creationTimestamp": "2026-01-01T10:00:00Z"}
    ready = {"type": "Ready", "status": "False", "message": "phase 1 of 3: 4/10 devices updated"}
    rollout = {
        "metadata": {"name": "ssd300", **meta},
        "status": {"phase": "Progressing", "counts": {"targeted": 10, "active": 4}, "conditions": [ready]},
    }
    seen = {"type": "Ready", "status": "True", "message": "agent reported 12s ago"}
    device = {
        "metadata": {"name": "se5-0017", **meta},
        "spec": {"chip": "BM1684"},
        "status": {"lastSeen": "2026-01-01T11:59:48Z", "conditions": [seen]},
    }
    text = status_text(FakeCustom([], bmodelrollouts=[rollout], edgedevices=[device]), "ns", NOW)  # type: ignore[arg-type]
    sections = text.split("\n\n")
    assert sections[0] == "builds: none"
    rollouts, devices = sections[1].splitlines(), sections[2].splitlines()
    assert rollouts[0] == "rollouts:" and rollouts[1].split() == ["NAME", "PHASE", "READY", "ACTIVE", "MESSAGE", "AGE"]
    assert rollouts[2].split() == [
        "ssd300",
        "Progressing",
        "False",
        "[####......]",
        "4/10",
        *ready["message"].split(),
        "2h",
    ]
    assert devices[0] == "devices:" and devices[1].split() == ["NAME", "READY", "CHIP", "SEEN", "MESSAGE", "AGE"]
    assert devices[2].split() == ["se5-0017", "True", "BM1684", "12s", *seen["message"].split(), "2h"]
