"""Operator metrics: which status writes finish a step, and what the registry holds after a build's reconciles."""

from __future__ import annotations

import itertools
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bmfleet.controllers.metrics import (
    PHASES,
    Metrics,
    StepTransition,
    metric_family,
    serve,
    step_transitions,
    timed,
    watch_builds,
    worst_checks,
)
from bmfleet.pipeline.status import summarise


@pytest.fixture
def m() -> Metrics:
    return Metrics(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def stage(index: int, state: str, **extra: Any) -> dict[str, Any]:
    entry = {"index": index, "inputs": [[index + 1, 3, 8, 8]], "shape": f"[{index + 1},3,8,8]", "state": state}
    return {"job": f"b-compile-{index}", **entry, **extra}


def status(*shapes: dict[str, Any], **steps: Any) -> dict[str, Any]:
    return summarise(list(shapes), [], 1, now="2026-01-01T00:00:00Z", **steps)


DONE0 = stage(0, "Succeeded", seconds=42.0)
DONE1 = stage(1, "Succeeded", startTime="2026-01-01T00:00:00Z", completionTime="2026-01-01T00:01:30Z")


def test_a_stage_counts_once_when_it_turns_succeeded() -> None:
    pending = status(stage(0, "Running"), stage(1, "Pending"))
    one = status(DONE0, stage(1, "Running"))
    both = status(DONE0, DONE1)
    assert step_transitions({}, pending) == []
    assert step_transitions(pending, one) == [StepTransition("compile", 42.0, None)]
    assert step_transitions(one, both) == [StepTransition("compile", 90.0, None)]  # from its Job's times
    assert step_transitions(both, both) == []  # a reconcile that finds nothing new
    assert step_transitions({}, both) == [StepTransition("compile", 42.0, None), StepTransition("compile", 90.0, None)]


def test_a_stage_recompiled_for_a_new_spec_counts_again() -> None:
    old = status(DONE0, DONE1)
    new = status(DONE0, stage(1, "Succeeded", job="b-compile-1-new", seconds=7.0))
    assert step_transitions(old, new) == [StepTransition("compile", 7.0, None)]


def test_cache_hits_and_a_finished_stage_whose_job_is_gone() -> None:
    ran = stage(0, "Succeeded", cacheKey="k0", seconds=30.0)
    self_hit = {k: v for k, v in ran.items() if k not in ("job", "seconds")} | {"cacheHit": True}
    hit = stage(1, "Succeeded", cacheKey="k1", cacheHit=True)
    hit.pop("job")
    assert step_transitions(status(stage(0, "Running", cacheKey="k0")), status(ran)) == [
        StepTransition("compile", 30.0, False)
    ]
    # The Job's TTL removed it and the cache now answers for the same stage: the same work, not a new hit.
    assert step_transitions(status(ran), status(self_hit)) == []
    assert step_transitions(status(ran, stage(1, "Pending", cacheKey="k1")), status(ran, hit)) == [
        StepTransition("compile", None, True)
    ]


def test_resolve_combine_and_gate_steps() -> None:
    shapes = (DONE0, DONE1)
    resolving = {"job": "b-resolve", "state": "Running"}
    resolved = {"job": "b-resolve", "state": "Succeeded", "digests": {"model": "sha256:0"}}
    combining = {"job": "b-combine", "cacheKey": "c", "state": "Running"}
    combined = {**combining, "state": "Succeeded", "seconds": 3.0, "uri": "pvc://s/b", "digest": "sha256:1"}
    gating = {"job": "b-gate", "state": "Running"}
    gated = {"job": "b-gate", "state": "Succeeded", "passed": True, "seconds": 120.5, "checks": []}
    before = status(stage(0, "Pending"), stage(1, "Pending"), inputs=resolving)
    assert step_transitions(before, status(*shapes, inputs=resolved, combine=combining, gates=gating)) == [
        StepTransition("resolve", None, None),  # the resolve step reports no time of its own
        StepTransition("compile", 42.0, None),
        StepTransition("compile", 90.0, None),
    ]
    mid = status(*shapes, inputs=resolved, combine=combining, gates=gating)
    assert step_transitions(mid, status(*shapes, inputs=resolved, combine=combined, gates=gated)) == [
        StepTransition("combine", 3.0, False),
        StepTransition("gate", 120.5, None),
    ]


def test_timed_counts_results_errors_and_time(m: Metrics) -> None:
    @timed("thing", lambda out: "requeue_after" if out == "later" else "success", metrics=m)
    def reconcile(what: str) -> str:
        if what == "boom":
            raise RuntimeError(what)
        return what

    # Every result exists from the start, at 0, as controller-runtime pre-creates them.
    assert value(m, "bmfleet_controller_reconcile_total", controller="thing", result="requeue") == 0
    reconcile("ok")
    reconcile("later")
    with pytest.raises(RuntimeError):
        reconcile("boom")
    assert value(m, "bmfleet_controller_reconcile_total", controller="thing", result="success") == 1
    assert value(m, "bmfleet_controller_reconcile_total", controller="thing", result="requeue_after") == 1
    assert value(m, "bmfleet_controller_reconcile_total", controller="thing", result="error") == 1
    assert value(m, "bmfleet_controller_reconcile_errors_total", controller="thing") == 1
    assert value(m, "bmfleet_controller_reconcile_time_seconds_count", controller="thing") == 3


def test_a_build_reconciled_many_times_observes_each_step_once(m: Metrics) -> None:
    checks = [
        {"gate": "classification", "metric": "top-1 accuracy", "value": 74.1, "baseline": 75.6, "delta_pp": -1.5,
         "threshold": 2.0, "rule": "max_drop", "passed": True},
        {"gate": "similarity", "metric": "cosine (out_a)", "value": 0.97, "threshold": 0.85, "rule": "min",
         "passed": True},
        {"gate": "similarity", "metric": "cosine (out_b)", "value": 0.81, "threshold": 0.85, "rule": "min",
         "passed": False},
    ]  # fmt: skip
    hit = stage(1, "Succeeded", cacheKey="k1", cacheHit=True)
    hit.pop("job")
    ran = stage(0, "Succeeded", cacheKey="k0", seconds=30.0)
    gated = {"job": "g", "state": "Succeeded", "passed": False, "seconds": 50.0, "checks": checks}
    history = [
        {},
        status(stage(0, "Running", cacheKey="k0"), hit),
        status(ran, hit, combine={"state": "Pending"}),
        status(ran, hit, combine={"job": "c", "cacheKey": "c", "state": "Succeeded", "seconds": 2.0}),
        status(ran, hit, combine={"job": "c", "cacheKey": "c", "state": "Succeeded", "seconds": 2.0}, gates=gated),
    ]
    for old, new in itertools.pairwise(history):
        m.record_status(old, new)
        m.record_status(new, new)  # another trigger of the same reconcile: nothing new
    assert value(m, "bmfleet_step_duration_seconds_count", step="compile") == 1  # the hit ran no Job
    assert value(m, "bmfleet_step_duration_seconds_sum", step="compile") == 30.0
    assert value(m, "bmfleet_step_duration_seconds_count", step="combine") == 1
    assert value(m, "bmfleet_step_duration_seconds_count", step="gate") == 1
    assert value(m, "bmfleet_step_duration_seconds_count", step="resolve") == 0
    assert value(m, "bmfleet_compile_cache_total", step="compile", result="hit") == 1
    assert value(m, "bmfleet_compile_cache_total", step="compile", result="miss") == 1
    assert value(m, "bmfleet_compile_cache_total", step="combine", result="miss") == 1
    assert value(m, "bmfleet_gate_checks_total", gate="similarity", result="fail") == 1
    assert value(m, "bmfleet_gate_checks_total", gate="similarity", result="pass") == 1
    assert value(m, "bmfleet_gate_checks_total", gate="classification", result="pass") == 1
    assert value(m, "bmfleet_gate_metric", gate="classification", metric="top-1 accuracy", model="int8") == 74.1
    assert value(m, "bmfleet_gate_metric", gate="classification", metric="top-1 accuracy", model="fp32") == 75.6
    assert value(m, "bmfleet_gate_delta_pp", gate="classification", metric="top-1 accuracy") == -1.5
    # Output names stay out of the labels; the worst output is the one shown.
    assert value(m, "bmfleet_gate_metric", gate="similarity", metric="cosine", model="int8") == 0.81


def test_worst_check_per_metric_family() -> None:
    assert metric_family("cosine (x)") == "cosine" and metric_family("mAP@[.50:.95]") == "mAP@[.50:.95]"
    checks = [
        {"gate": "similarity", "metric": "euclidean distance (a)", "value": 0.2, "rule": "max"},
        {"gate": "similarity", "metric": "euclidean distance (b)", "value": 0.5, "rule": "max"},
        {"gate": "detection", "metric": "mAP", "value": None, "rule": "min"},
        {"gate": "detection", "metric": "mAP", "value": 30.0, "rule": "min"},
    ]
    worst = worst_checks(checks)
    assert worst[("similarity", "euclidean distance")]["value"] == 0.5
    assert worst[("detection", "mAP")]["value"] == 30.0


def test_builds_gauge_follows_the_index(m: Metrics) -> None:
    assert value(m, "bmfleet_builds", phase="Compiled") is None  # not watching yet: no numbers
    index: dict[str, list[str]] = {"Compiled": ["a", "b"], "Failed": ["c"]}
    watch_builds(index, metrics=m)
    assert value(m, "bmfleet_builds", phase="Compiled") == 2
    assert value(m, "bmfleet_builds", phase="Failed") == 1
    assert value(m, "bmfleet_builds", phase="Verified") == 0
    index["Compiled"].remove("b")
    assert value(m, "bmfleet_builds", phase="Compiled") == 1
    assert set(PHASES) >= {"Pending", "Compiling", "Verified", "GateFailed", "Unknown"}


def test_rollout_and_fleet_devices_replace_the_last_numbers(m: Metrics) -> None:
    m.set_rollout_devices({"Updated": 4, "Pending": 6})
    m.set_rollout_devices({"Updated": 10})
    assert value(m, "bmfleet_rollout_devices", state="Updated") == 10
    assert value(m, "bmfleet_rollout_devices", state="Pending") == 0
    m.set_fleet_devices({("Ready", "BM1684"): 12, ("NotReported", "BM1684X"): 1})
    m.set_fleet_devices({("Ready", "BM1684"): 11})
    assert value(m, "bmfleet_fleet_devices", state="Ready", chip="BM1684") == 11
    assert value(m, "bmfleet_fleet_devices", state="NotReported", chip="BM1684X") == 0


def test_serve_exposes_the_registry(m: Metrics) -> None:
    m.reconciled("bmodelbuild", "success", 0.01)
    port = serve("127.0.0.1:0", m.registry)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'bmfleet_controller_reconcile_total{controller="bmodelbuild",result="success"} 1.0' in text
    assert "bmfleet_build_info{" in text
    assert "_created" not in text
