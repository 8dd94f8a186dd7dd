"""kwok Stage config for the sandbox: kwok's stock "fast" stages plus two test hooks on pod annotations.

- ``sandbox.bmfleet.io/outcome: fail``: the pod goes Running -> Failed, containers
  ``terminated{exitCode: 1, reason: Error}`` (stage ``pod-fail``; any pod, Job-owned or not).
- ``sandbox.bmfleet.io/hold: "true"``: the pod stays Running and never finishes; once the annotation is
  removed (or changed) the usual stage applies.
- ``sandbox.bmfleet.io/execute: "true"``: kwok leaves the pod alone (but deletes it when asked); the sandbox
  kubelet (:mod:`bmfleet.sandbox.kubelet`) runs its command for real.
- ``sandbox.bmfleet.io/run-time: "3s"``: a Job pod stays Running that long before it completes (a Go duration;
  default 0), so a demo can show work in progress.

kwok picks at random among stages whose selectors match, so the stock ``pod-complete`` gets the negated
selectors and :func:`check_disjoint` proves every pair of pod stages can never match the same pod.
The stock stage files are copied from the kwok module by ``hack/build-control-plane.sh``; none are vendored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

OUTCOME_ANNOTATION = "sandbox.bmfleet.io/outcome"
HOLD_ANNOTATION = "sandbox.bmfleet.io/hold"
RUN_TIME_ANNOTATION = "sandbox.bmfleet.io/run-time"
EXECUTE_ANNOTATION = "sandbox.bmfleet.io/execute"  # run for real by the sandbox kubelet, not by kwok

STOCK_STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)

Stage = dict[str, Any]
Requirement = dict[str, Any]

_FAIL_TEMPLATE = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  reason: PodFailed
  status: "False"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  reason: PodFailed
  status: "False"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: 1
      finishedAt: {{ $now | Quote }}
      message: "simulated failure"
      reason: Error
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Failed
"""


def annotation_key(name: str) -> str:
    """kwok selector key (a jq expression) for a pod annotation."""
    return f'.metadata.annotations["{name}"]'


def load_stock_stages(stage_dir: Path) -> list[Stage]:
    """Read the stock stage files in the order kwok should see them."""
    stages = []
    for rel in STOCK_STAGE_FILES:
        doc = yaml.safe_load((stage_dir / rel).read_text())
        if not isinstance(doc, dict) or doc.get("kind") != "Stage":
            raise ValueError(f"{stage_dir / rel}: not a kwok Stage")
        stages.append(doc)
    return stages


def sandbox_stages(stock: list[Stage]) -> list[Stage]:
    """Return the stock stages with pod-complete narrowed and the pod-fail stage added after it."""
    out: list[Stage] = []
    for original in stock:
        stage = copy.deepcopy(original)
        out.append(stage)
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["selector"]["matchExpressions"].append(_not_executed())
        if stage["metadata"]["name"] != "pod-complete":
            continue
        expressions: list[Requirement] = stage["spec"]["selector"]["matchExpressions"]
        expressions += [_not_failing(), _not_held(), _not_executed()]
        stage["spec"]["delay"] = {
            "durationMilliseconds": 0,
            "durationFrom": {"expressionFrom": annotation_key(RUN_TIME_ANNOTATION)},
        }
        out.append(_fail_stage())
    if not any(s["metadata"]["name"] == "pod-fail" for s in out):
        raise ValueError("stock stages have no pod-complete stage to narrow")
    check_disjoint(out)
    return out


def write_kwok_config(stage_dir: Path, path: Path) -> Path:
    """Write the sandbox stage config (a multi-document YAML) for ``kwok --config``."""
    stages = sandbox_stages(load_stock_stages(stage_dir))
    path.write_text(yaml.dump_all(stages, Dumper=_BlockDumper, sort_keys=False))
    return path


def check_disjoint(stages: list[Stage]) -> None:
    """Raise ValueError if two stages for the same kind could match one object."""
    for i, a in enumerate(stages):
        for b in stages[i + 1 :]:
            if _kind(a) == _kind(b) and not selectors_disjoint(a, b):
                raise ValueError(
                    f"kwok stages {a['metadata']['name']!r} and {b['metadata']['name']!r} can match the "
                    "same object; kwok would pick one at random"
                )


def selectors_disjoint(a: Stage, b: Stage) -> bool:
    """True if some key carries contradictory requirements in the two selectors.

    Sound for single-valued keys; a multi-valued key (``.[]``) only counts when In meets NotIn.
    """
    for ra in _expressions(a):
        for rb in _expressions(b):
            if ra["key"] == rb["key"] and (_contradict(ra, rb) or _contradict(rb, ra)):
                return True
    return False


def _contradict(x: Requirement, y: Requirement) -> bool:
    ox, oy = x["operator"], y["operator"]
    vx, vy = set(x.get("values") or []), set(y.get("values") or [])
    multi = ".[]" in x["key"]
    return (
        (ox == "Exists" and oy == "DoesNotExist")
        or (ox == "In" and oy == "NotIn" and vx <= vy)
        or (ox == "In" and oy == "DoesNotExist" and "" not in vx)
        or (not multi and ox == "In" and oy == "In" and not vx & vy)
    )


def _expressions(stage: Stage) -> list[Requirement]:
    selector = stage["spec"].get("selector") or {}
    expressions: list[Requirement] = selector.get("matchExpressions") or []
    return expressions


def _kind(stage: Stage) -> tuple[str, str]:
    ref = stage["spec"]["resourceRef"]
    return ref.get("apiGroup", ""), ref["kind"]


def _not_failing() -> Requirement:
    return {"key": annotation_key(OUTCOME_ANNOTATION), "operator": "NotIn", "values": ["fail"]}


def _not_held() -> Requirement:
    return {"key": annotation_key(HOLD_ANNOTATION), "operator": "NotIn", "values": ["true"]}


def _not_executed() -> Requirement:
    return {"key": annotation_key(EXECUTE_ANNOTATION), "operator": "NotIn", "values": ["true"]}


def _fail_stage() -> Stage:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pod-fail"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {"key": annotation_key(OUTCOME_ANNOTATION), "operator": "In", "values": ["fail"]},
                    _not_held(),
                    _not_executed(),
                ]
            },
            "next": {"statusTemplate": _FAIL_TEMPLATE},
        },
    }


class _BlockDumper(yaml.SafeDumper):
    """Keep the Go templates readable: multi-line strings as ``|`` blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)
