"""A two-shape build end to end on the real control plane: Jobs, scheduling, status, Events, spec changes,
failures, garbage collection. The operator runs as the chart's ServiceAccount in its own process."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bmfleet.cli.devenv import OperatorProcess, kubectl, wait_for
from tests.integration.conftest import Builds, sample

BM1684_NODES = {"bm1684-0", "bm1684-1"}


def _two_jobs(builds: Builds, name: str) -> list[client.V1Job]:
    return wait_for(lambda: j if len(j := builds.jobs(name)) >= 2 else None, 30, f"two Jobs of {name}")


def test_two_shape_build_compiles_on_bm1684_nodes(
    builds: Builds, operator: OperatorProcess, sandbox: Any, namespace: str
) -> None:
    builds.create(sample("ssd300"))
    jobs = _two_jobs(builds, "ssd300")
    done = builds.wait_condition("ssd300", "Compiled", "True", timeout=90)

    jobs = builds.jobs("ssd300")
    assert len(jobs) == 2, [j.metadata.name for j in jobs]
    by_stage = {j.metadata.labels["bmfleet.io/stage"]: j for j in jobs}
    for stage, shape in (("0", "[4,3,300,300]"), ("1", "[1,3,300,300]")):
        job = by_stage[stage]
        pod = job.spec.template.spec
        (c,) = pod.containers
        assert pod.node_selector == {"sophgo.com/chip": "bm1684"}
        assert c.resources.requests["sophgo.com/tpu"] == c.resources.limits["sophgo.com/tpu"] == "1"
        assert c.command == ["bmfleet", "worker", "compile"]
        assert f"--shapes={shape}" in c.args and "--toolchain=bmnetu" in c.args and "--precision=INT8" in c.args
        assert job.metadata.owner_references[0].uid == done["metadata"]["uid"]
        assert job.metadata.annotations["bmfleet.io/shape"] == shape

    pods = builds.pods("ssd300")
    assert pods and {p.spec.node_name for p in pods} <= BM1684_NODES, [p.spec.node_name for p in pods]

    st = done["status"]
    assert st["phase"] == "Compiled" and st["shapesReady"] == "2/2"
    assert [s["state"] for s in st["shapes"]] == ["Succeeded", "Succeeded"]
    assert all(s["startTime"] and s["completionTime"] and s["job"] for s in st["shapes"])
    conds = {c["type"]: c for c in st["conditions"]}
    assert (conds["Ready"]["status"], conds["Reconciling"]["status"], conds["Stalled"]["status"]) == (
        "True",
        "False",
        "False",
    )
    assert all(c["observedGeneration"] == done["metadata"]["generation"] for c in conds.values())

    table = kubectl(sandbox, "get", "bmb", "-n", namespace)
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "READY", "PHASE", "CHIP", "SHAPES", "AGE"]
    assert row.split()[:5] == ["ssd300", "True", "Compiled", "BM1684", "2/2"]

    reasons = wait_for(
        lambda: r if (r := [e.reason for e in builds.events("ssd300")]).count("Compiled") == 1 else None,
        15,
        "the Compiled event",
    )
    assert reasons.count("JobCreated") == 2 and reasons.count("Compiled") == 1


def test_restricted_namespace_really_enforces(builds: Builds, namespace: str) -> None:
    """The compile pods above were admitted under `restricted`; a privileged pod is not."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "priv"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    with pytest.raises(ApiException) as err:
        builds.core.create_namespaced_pod(namespace, pod)
    assert err.value.status == 403 and "violates PodSecurity" in err.value.body


def test_bm1684x_build_lands_on_the_bm1684x_node(builds: Builds, operator: OperatorProcess) -> None:
    spec = {
        "toolchain": {"name": "tpu-mlir"},
        "model": {"format": "onnx", "uri": "https://m.example/n.onnx"},
        "chip": "BM1684X",
        "precision": "FP16",
        "shapes": [{"shape": "[1,3,224,224]"}],
    }
    builds.create({"apiVersion": "bmfleet.io/v1alpha1", "kind": "BModelBuild", "metadata": {"name": "x"}, "spec": spec})
    builds.wait_condition("x", "Compiled", "True", timeout=90)
    assert {p.spec.node_name for p in builds.pods("x")} == {"bm1684x-0"}


def test_spec_change_replaces_only_stale_jobs_and_delete_collects_children(
    builds: Builds, operator: OperatorProcess
) -> None:
    builds.create(sample("change"))
    builds.wait_condition("change", "Compiled", "True", timeout=90)
    before = {j.metadata.labels["bmfleet.io/stage"]: j.metadata for j in builds.jobs("change")}

    body = builds.get("change")
    spec = body["spec"]
    spec["shapes"][1] = {"inputs": [[2, 3, 300, 300]]}
    builds.patch("change", {"spec": {"shapes": spec["shapes"]}})
    done = builds.wait_condition("change", "Compiled", "True", timeout=90)
    assert done["status"]["observedGeneration"] == 2
    assert done["status"]["shapes"][1]["shape"] == "[2,3,300,300]"

    after = wait_for(lambda: j if len(j := builds.jobs("change")) == 2 else None, 30, "stale Job removed")
    now = {j.metadata.labels["bmfleet.io/stage"]: j.metadata for j in after}
    assert now["0"].uid == before["0"].uid  # unchanged stage: same Job, not recompiled
    assert now["1"].name != before["1"].name
    assert "StaleJobDeleted" in [e.reason for e in builds.events("change")]

    builds.delete("change")
    wait_for(lambda: not builds.jobs("change"), 60, "Jobs garbage-collected with their build")


def test_failed_compile_stalls_with_reason(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("fails")
    body["spec"]["compile"] = {"retries": 0}
    body["spec"]["placement"] = {"podAnnotations": {"sandbox.bmfleet.io/outcome": "fail"}}
    builds.create(body)
    builds.wait_condition("fails", "Stalled", "True", timeout=90)  # as soon as one stage fails

    def both_failed() -> dict[str, Any] | None:
        st = builds.get("fails")["status"]
        return st if [s["state"] for s in st["shapes"]] == ["Failed", "Failed"] else None

    st = wait_for(both_failed, 60, "both stages Failed")
    assert st["phase"] == "Failed"
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "CompileFailed"
    assert "stage 0 ([4,3,300,300])" in stalled["message"] and "stage 1 ([1,3,300,300])" in stalled["message"]
    assert "BackoffLimitExceeded" in stalled["message"]
    assert "Warning" in {e.type for e in builds.events("fails") if e.reason == "Failed"}
