"""kwok stage config: the outcome/hold hooks, and selectors that never let kwok choose at random.

Selectors are evaluated here with a tiny model of kwok's matcher (pkg/utils/expression: a jq query whose
null/erroring results count as "no value"), over the real stock stages when the build has copied them, and
always over a minimal stand-in with the selectors documented in control-plane.md §3.3.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bmfleet.sandbox.stages import (
    HOLD_ANNOTATION,
    OUTCOME_ANNOTATION,
    STOCK_STAGE_FILES,
    check_disjoint,
    load_stock_stages,
    sandbox_stages,
    write_kwok_config,
)

REPO = Path(__file__).resolve().parents[2]

MINIMAL_SELECTORS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "node/fast/node-initialize.yaml": (
        "Node",
        [
            {
                "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                "operator": "NotIn",
                "values": ["True"],
            }
        ],
    ),
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml": (
        "Node",
        [
            {"key": ".status.phase", "operator": "In", "values": ["Running"]},
            {
                "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                "operator": "In",
                "values": ["True"],
            },
        ],
    ),
    "pod/fast/pod-ready.yaml": (
        "Pod",
        [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            {
                "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                "operator": "NotIn",
                "values": ["True"],
            },
        ],
    ),
    "pod/fast/pod-complete.yaml": (
        "Pod",
        [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.phase", "operator": "In", "values": ["Running"]},
            {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
        ],
    ),
    "pod/fast/pod-delete.yaml": ("Pod", [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}]),
}


def _write_minimal(root: Path) -> Path:
    for rel, (kind, expressions) in MINIMAL_SELECTORS.items():
        name = Path(rel).stem
        doc = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": name},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": kind},
                "selector": {"matchExpressions": expressions},
                "next": {"statusTemplate": "phase: X\n"},
            },
        }
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(yaml.safe_dump(doc))
    return root


def _real_stage_dirs() -> list[Path]:
    cache = Path(os.environ.get("BMFLEET_CACHE", REPO / ".cache"))
    found = sorted(cache.glob("controlplane-*/kwok-stages"))
    found += sorted((Path.home() / "go/pkg/mod/sigs.k8s.io").glob("kwok@v0.8.0/kustomize/stage"))
    return [d for d in found if all((d / f).is_file() for f in STOCK_STAGE_FILES)][:1]


@pytest.fixture(params=["minimal", "real"])
def stage_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "minimal":
        return _write_minimal(tmp_path / "stages")
    real = _real_stage_dirs()
    if not real:
        pytest.skip("kwok stage files not found (run hack/build-control-plane.sh)")
    return real[0]


# --- a model of kwok's selector matching -------------------------------------------------------------------
_ANNOTATION = re.compile(r'^\.metadata\.annotations\["([^"]+)"\]$')
_CONDITION = re.compile(r'^\.status\.conditions\.\[\] \| select\( \.type == "(\w+)" \) \| \.status$')


def _values(obj: dict[str, Any], key: str) -> list[Any]:
    if m := _ANNOTATION.match(key):
        found = (obj.get("metadata", {}).get("annotations") or {}).get(m.group(1))
        return [] if found is None else [found]
    if m := _CONDITION.match(key):
        conditions = obj.get("status", {}).get("conditions") or []
        return [c["status"] for c in conditions if c.get("type") == m.group(1)]
    if not re.fullmatch(r"(\.\w+|\.\[\])+", key):
        raise AssertionError(f"test matcher does not understand {key!r}")
    current: list[Any] = [obj]
    for part in re.findall(r"\.(\w+|\[\])", key):
        nxt: list[Any] = []
        for value in current:
            if part == "[]":
                nxt.extend(value if isinstance(value, list) else [])
            elif isinstance(value, dict) and value.get(part) is not None:
                nxt.append(value[part])
        current = nxt
    return current


def _matches(stage: dict[str, Any], obj: dict[str, Any]) -> bool:
    for req in stage["spec"]["selector"]["matchExpressions"]:
        values, wanted = _values(obj, req["key"]), req.get("values") or []
        hit = any(v in wanted for v in values)
        ok = {
            "In": hit,
            "NotIn": not hit,
            "Exists": any(v is not None for v in values),
            "DoesNotExist": not any(v is not None for v in values),
        }[req["operator"]]
        if not ok:
            return False
    return True


def _pod(phase: str, owner: str | None = "Job", deleting: bool = False, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "annotations": annotations or None}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x"}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    ready = "True" if phase == "Running" else "False"
    return {
        "kind": "Pod",
        "metadata": meta,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]},
    }


FAIL = {"sandbox.bmfleet.io/outcome": "fail"}
HOLD = {"sandbox.bmfleet.io/hold": "true"}
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("pending pod starts", _pod("Pending"), "pod-ready"),
    ("job pod completes", _pod("Running"), "pod-complete"),
    (
        "job pod with other outcome completes",
        _pod("Running", **{"sandbox.bmfleet.io/outcome": "pass"}),
        "pod-complete",
    ),
    ("job pod fails", _pod("Running", **FAIL), "pod-fail"),
    ("bare pod fails", _pod("Running", owner=None, **FAIL), "pod-fail"),
    ("held job pod stays running", _pod("Running", **HOLD), None),
    ("held failing pod stays running", _pod("Running", **HOLD, **FAIL), None),
    ("hold=false does not hold", _pod("Running", **{"sandbox.bmfleet.io/hold": "false"}), "pod-complete"),
    ("held pod still starts", _pod("Pending", **HOLD), "pod-ready"),
    ("deployment pod runs forever", _pod("Running", owner="ReplicaSet"), None),
    ("deleting pod is deleted", _pod("Running", deleting=True, **HOLD), "pod-delete"),
    ("finished pod is left alone", _pod("Failed", **FAIL), None),
]


@pytest.mark.parametrize(("what", "pod", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pod_lifecycle(stage_dir: Path, what: str, pod: dict[str, Any], expected: str | None) -> None:
    stages = [s for s in sandbox_stages(load_stock_stages(stage_dir)) if s["spec"]["resourceRef"]["kind"] == "Pod"]
    matched = [s["metadata"]["name"] for s in stages if _matches(s, pod)]
    assert matched == ([expected] if expected else []), what


def test_node_stages_still_apply(stage_dir: Path) -> None:
    stages = sandbox_stages(load_stock_stages(stage_dir))
    new = {"kind": "Node", "metadata": {"name": "n"}, "status": {}}
    ready = {
        "kind": "Node",
        "metadata": {"name": "n"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    node_stages = [s for s in stages if s["spec"]["resourceRef"]["kind"] == "Node"]
    assert [s["metadata"]["name"] for s in node_stages if _matches(s, new)] == ["node-initialize"]
    assert [s["metadata"]["name"] for s in node_stages if _matches(s, ready)] == ["node-heartbeat-with-lease"]


def test_stage_set_and_negated_selectors(stage_dir: Path) -> None:
    stages = sandbox_stages(load_stock_stages(stage_dir))
    names = [s["metadata"]["name"] for s in stages]
    assert names == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-fail",
        "pod-delete",
    ]
    complete = stages[names.index("pod-complete")]["spec"]["selector"]["matchExpressions"]
    assert {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]} in complete
    assert {
        "key": f'.metadata.annotations["{OUTCOME_ANNOTATION}"]',
        "operator": "NotIn",
        "values": ["fail"],
    } in complete
    assert {
        "key": f'.metadata.annotations["{HOLD_ANNOTATION}"]',
        "operator": "NotIn",
        "values": ["true"],
    } in complete


def test_fail_stage_template(stage_dir: Path) -> None:
    stages = {s["metadata"]["name"]: s for s in sandbox_stages(load_stock_stages(stage_dir))}
    template = stages["pod-fail"]["spec"]["next"]["statusTemplate"]
    assert "phase: Failed" in template
    assert "exitCode: 1" in template
    assert "reason: Error" in template
    assert 'message: "simulated failure"' in template


def test_written_config_round_trips(stage_dir: Path, tmp_path: Path) -> None:
    path = write_kwok_config(stage_dir, tmp_path / "kwok.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs == sandbox_stages(load_stock_stages(stage_dir))
    assert "statusTemplate: |" in path.read_text()  # templates stay readable blocks


def test_check_disjoint_catches_overlap(tmp_path: Path) -> None:
    stages = sandbox_stages(load_stock_stages(_write_minimal(tmp_path)))
    check_disjoint(stages)
    clash = yaml.safe_load(yaml.safe_dump(stages[3]))
    clash["metadata"]["name"] = "pod-complete-2"
    with pytest.raises(ValueError, match="pod-complete"):
        check_disjoint([*stages, clash])


def test_missing_pod_complete_is_an_error(tmp_path: Path) -> None:
    stages = load_stock_stages(_write_minimal(tmp_path))
    with pytest.raises(ValueError, match="pod-complete"):
        sandbox_stages([s for s in stages if s["metadata"]["name"] != "pod-complete"])
