"""The chart's Argo CD health script judges REAL builds on the sandbox the way kstatus (Flux, `kubectl wait`,
cli-utils) does: every version of the object the API server stored is read from a watch, run through the Lua
script and through the kstatus oracle, and the two must agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import watch

from bmfleet.cli.devenv import OperatorProcess
from tests.helpers import kstatus
from tests.helpers.argocd import health
from tests.integration.conftest import Builds, sample

Snapshot = tuple[str, str, dict[str, Any]]  # (Argo health, message, object)


def _follow(builds: Builds, start: dict[str, Any], done: Callable[[str], bool], timeout: int = 90) -> list[Snapshot]:
    """`start` and every later version of it (a watch from its resourceVersion), until `done(health)`."""
    name = start["metadata"]["name"]
    seen = [(*health("BModelBuild", start), start)]
    if done(seen[-1][0]):
        return seen
    w = watch.Watch()
    for event in w.stream(
        builds.custom.list_namespaced_custom_object,
        "bmfleet.io",
        "v1alpha1",
        builds.namespace,
        "bmodelbuilds",
        field_selector=f"metadata.name={name}",
        resource_version=start["metadata"]["resourceVersion"],
        timeout_seconds=timeout,
    ):
        obj = event["object"]
        seen.append((*health("BModelBuild", obj), obj))
        if done(seen[-1][0]):
            w.stop()
            return seen
    raise AssertionError(f"{name}: no final health in {timeout}s; saw {[(h, m) for h, m, _ in seen]}")


def _transitions(seen: list[Snapshot]) -> list[str]:
    out: list[str] = []
    for h, _, _ in seen:
        if not out or out[-1] != h:
            out.append(h)
    return out


def _agrees_with_kstatus(seen: list[Snapshot]) -> int:
    """Every version the operator has reported on gets kstatus' verdict; one it has not is Progressing."""
    compared = 0
    for h, _, obj in seen:
        if (obj.get("status") or {}).get("observedGeneration") is None:
            assert h == "Progressing", obj
            continue
        assert h == kstatus.argo_health(obj), (h, kstatus.compute(obj), obj["status"])
        compared += 1
    return compared


def test_good_build_goes_progressing_then_healthy(builds: Builds, operator: OperatorProcess) -> None:
    created = builds.create(sample("good"))
    seen = _follow(builds, created, lambda h: h in ("Healthy", "Degraded"))

    assert _transitions(seen) == ["Progressing", "Healthy"], [(h, m) for h, m, _ in seen]
    working = [obj for h, _, obj in seen if h == "Progressing" and (obj.get("status") or {}).get("conditions")]
    assert working, "no in-progress status from the operator was seen"
    assert any(c["type"] == "Reconciling" and c["status"] == "True" for c in working[0]["status"]["conditions"])
    assert _agrees_with_kstatus(seen) >= 2
    final = seen[-1][2]
    assert kstatus.compute(final).status == kstatus.CURRENT
    assert seen[-1][1] == "Compiled: all 2 stage(s) compiled"

    # A spec change: Progressing at once (generation not observed yet), Healthy again when recompiled.
    shapes = final["spec"]["shapes"]
    shapes[1] = {"inputs": [[2, 3, 300, 300]]}
    patched = builds.patch("good", {"spec": {"shapes": shapes}})
    assert patched["metadata"]["generation"] == 2
    again = _follow(builds, patched, lambda h: h in ("Healthy", "Degraded"))
    assert again[0][:2] == ("Progressing", "generation 2 not observed yet (status is for 1)")
    assert kstatus.compute(again[0][2]).status == kstatus.IN_PROGRESS
    assert _transitions(again) == ["Progressing", "Healthy"], [(h, m) for h, m, _ in again]
    assert _agrees_with_kstatus(again) >= 2
    assert again[-1][2]["status"]["observedGeneration"] == 2


def test_stalled_build_is_degraded(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("stalls")
    body["spec"]["shapes"] = [{"shape": "[4,3,300,300]"}, {"inputs": [[4, 3, 300, 300]]}]
    seen = _follow(builds, builds.create(body), lambda h: h in ("Healthy", "Degraded"), timeout=60)

    assert _transitions(seen) == ["Progressing", "Degraded"], [(h, m) for h, m, _ in seen]
    _, message, final = seen[-1]
    assert message.startswith("InvalidSpec: spec.shapes[1]: [4,3,300,300] repeats spec.shapes[0]"), message
    assert kstatus.compute(final).status == kstatus.FAILED
    assert _agrees_with_kstatus(seen) >= 1


def test_failed_compile_is_degraded(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("breaks")
    body["spec"]["compile"] = {"retries": 0}
    body["spec"]["placement"] = {"podAnnotations": {"sandbox.bmfleet.io/outcome": "fail"}}
    seen = _follow(builds, builds.create(body), lambda h: h in ("Healthy", "Degraded"))

    assert _transitions(seen) == ["Progressing", "Degraded"], [(h, m) for h, m, _ in seen]
    assert seen[-1][1].startswith("CompileFailed: stage ")
    assert kstatus.compute(seen[-1][2]).status == kstatus.FAILED
    assert _agrees_with_kstatus(seen) >= 2
