"""An operator that dies mid-way and comes back creates no duplicate Job and loses no status field."""

from __future__ import annotations

from typing import Any

from bmfleet.cli.devenv import OperatorProcess, wait_for
from tests.integration.conftest import Builds, sample

HOLD = "sandbox.bmfleet.io/hold"


def _flatten(status: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for k, v in status.items():
        keys.add(prefix + k)
        if isinstance(v, dict):
            keys |= _flatten(v, prefix + k + ".")
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    keys |= _flatten(item, f"{prefix}{k}[{i}].")
    return keys


def test_crash_mid_build_then_resume(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("resume")
    body["spec"]["placement"] = {"podAnnotations": {HOLD: "true"}}
    builds.create(body)

    def running() -> dict[str, Any] | None:
        st = builds.get("resume").get("status") or {}
        shapes = st.get("shapes") or []
        return st if len(shapes) == 2 and all(s["state"] == "Running" for s in shapes) else None

    before = wait_for(running, 60, "both stages Running")
    jobs_before = {j.metadata.name: j.metadata.uid for j in builds.jobs("resume")}
    assert len(jobs_before) == 2

    operator.kill()  # SIGKILL: no graceful shutdown
    try:
        # While the operator is down the compiles finish (what the hold annotation was keeping back).
        for pod in builds.pods("resume"):
            builds.core.patch_namespaced_pod(
                pod.metadata.name, builds.namespace, {"metadata": {"annotations": {HOLD: None}}}
            )
        wait_for(lambda: all((j.status.succeeded or 0) == 1 for j in builds.jobs("resume")), 60, "Jobs complete")
        assert (builds.get("resume")["status"]) == before  # nobody reconciled while it was down
    finally:
        operator.start()

    done = builds.wait_condition("resume", "Compiled", "True", timeout=60)
    jobs_after = {j.metadata.name: j.metadata.uid for j in builds.jobs("resume")}
    assert jobs_after == jobs_before  # same Jobs, none added
    missing = _flatten(before) - _flatten(done["status"])
    assert not missing, missing
    for old, new in zip(before["shapes"], done["status"]["shapes"], strict=True):
        assert new["startTime"] == old["startTime"] and new["job"] == old["job"]
    stalled_before = next(c for c in before["conditions"] if c["type"] == "Stalled")
    stalled_after = next(c for c in done["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled_after["lastTransitionTime"] == stalled_before["lastTransitionTime"]


def test_build_applied_while_operator_down_is_picked_up_once(builds: Builds, operator: OperatorProcess) -> None:
    operator.stop()
    try:
        builds.create(sample("offline"))
        assert builds.jobs("offline") == []
    finally:
        operator.start()
    builds.wait_condition("offline", "Compiled", "True", timeout=90)
    assert len(builds.jobs("offline")) == 2
