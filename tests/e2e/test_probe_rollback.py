"""A bad release is stopped by the devices themselves: release A runs on 20 agents; release B (another model,
published by a second build to the same rollout) fails the agents' load probe on 3 boxes of its first cohort, which
swap back on their own; past maxFailurePercent the rollout aborts and rolls the whole cohort back to A, and the
devices outside the cohort never see B at all."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bmfleet.cli.devenv import OperatorProcess, wait_for
from bmfleet.pipeline.rollout import order_key
from tests.e2e.conftest import Env
from tests.e2e.recording import (
    DeviceHistory,
    G,
    Recorder,
    RolloutHistory,
    V,
    desired_entry,
    model_status,
    wait_registered,
)
from tests.e2e.support import MODEL, Fleet, GatewayProcess, release_build
from tests.integration.conftest import ARTIFACTS, Builds
from tests.store.servers import Server

pytestmark = pytest.mark.toolchain

KEY, ROLLOUT = "rollback", "release"
NAMES = [f"pb-{i:02d}" for i in range(20)]
FAILING = 3  # boxes whose runtime cannot load B: 15% of the fleet, 30% of B's first cohort

# A box with a rules file loads only the digests it lists (the agent appends the model's path, which is named
# after its digest); without one it loads anything. The agent runs it after the structural check.
PROBE = """#!/bin/sh
[ -f "$1" ] || exit 0
hex=$(basename "$2" .bmodel)
hex=${hex#sha256-}
grep -qx "$hex" "$1" && exit 0
echo "this runtime cannot load $hex" >&2
exit 1
"""


def wait_phase(rollout: RolloutHistory, digest: str, phases: tuple[str, ...], timeout: float = 300) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = rollout.status
        return st if (st.get("artifact") or {}).get("digest") == digest and st.get("phase") in phases else None

    return wait_for(check, timeout, f"rollout of {digest[:19]} in {phases}", interval=0.2)


@pytest.mark.timeout(1500)
def test_probe_failures_abort_and_roll_back(
    e2e: Env, builds: Builds, api: client.ApiClient, operator: OperatorProcess, registry: Server,
    gateway: GatewayProcess, fleet: Fleet, record: Callable[..., Recorder], tmp_path: Path,
) -> None:  # fmt: skip
    devices, rollout = DeviceHistory(), RolloutHistory(ROLLOUT)
    record("edgedevices", devices, f"e2e={KEY}")
    record("bmodelrollouts", rollout)
    script, rules = tmp_path / "probe.sh", tmp_path / "rules"
    script.write_text(PROBE)
    rules.mkdir()
    fleet.start(NAMES, labels={"app": "cam", "e2e": KEY}, probe=lambda name: f"sh {script} {rules / name}")
    wait_registered(devices, NAMES, fleet)
    selector = {"matchLabels": {"app": "cam", "e2e": KEY}}

    # Release A everywhere (one phase).
    a_spec = {"name": ROLLOUT, "modelName": MODEL, "selector": selector, "strategy": {"phases": [{"percent": 100}]}}
    builds.create(release_build("release-a", e2e.inputs, registry.port, a_spec))
    a = builds.wait_condition("release-a", "Published", "True", timeout=900)["status"]["combine"]["digest"]
    wait_phase(rollout, a, ("Completed",))
    wait_for(lambda: rollout.status["counts"]["active"] == 20, 60, "A active on all 20")
    after_a = devices.snapshot()
    versions = {n: after_a[n]["spec"]["desired"]["version"] for n in NAMES}
    seen_a = len(devices.assignments)

    # B's first cohort (50%) is the first half of the rollout's own device order; 3 of it cannot load B.
    uid = client.CustomObjectsApi(api).get_namespaced_custom_object(G, V, e2e.namespace, "bmodelrollouts", ROLLOUT)
    order = sorted(NAMES, key=lambda n: order_key(uid["metadata"]["uid"], n))
    cohort, outside = set(order[:10]), set(order[10:])
    failing = order[:FAILING]
    for name in failing:
        (rules / name).write_text(a.removeprefix("sha256:") + "\n")

    t0 = time.monotonic()
    strategy = {"phases": [{"percent": 50}, {"percent": 100}], "abort": {"maxFailurePercent": 10, "minDevices": 5},
                "autoRollback": True}  # fmt: skip
    b_spec = {"name": ROLLOUT, "modelName": MODEL, "selector": selector, "strategy": strategy}
    builds.create(release_build("release-b", e2e.inputs, registry.port, b_spec, seed=1))
    b = builds.wait_condition("release-b", "Published", "True", timeout=900)["status"]["combine"]["digest"]
    assert b != a
    published = time.monotonic() - t0
    st = wait_phase(rollout, b, ("RolledBack",))
    done = time.monotonic() - t0
    assert {c["type"]: c["status"] for c in st["conditions"]}["Aborted"] == "True"
    assert st["counts"]["rolledBack"] == 10 and st["currentPhase"] == 0, st["counts"]
    path = rollout.path(b)
    assert path[0] == ("Progressing", 0) and path[-1] == ("RolledBack", 0), path
    assert all(i == 0 for _, i in path)  # never got past the first cohort

    later = devices.assignments[seen_a:]
    installs = [x for x in later if x.action == "install"]
    rollbacks = [x for x in later if x.action == "rollback"]
    assert {x.device for x in installs} == cohort and all(x.digest == b for x in installs)
    assert {x.device for x in rollbacks} == cohort and all(x.digest == a for x in rollbacks)
    objs = devices.snapshot()
    for name in sorted(cohort):  # every box of the cohort runs A again
        got = model_status(objs[name])
        assert (got.get("state"), got.get("activeDigest")) == ("RolledBack", a), (name, got)
        assert (
            fleet.agents[name]
            .state_dir.joinpath("models", MODEL, "current")
            .resolve()
            .name.endswith(a.removeprefix("sha256:") + ".bmodel")
        )
    # The probe refused B where it had to (the boxes swapped back to A by themselves, and said so): that is what
    # aborted the rollout. A failing box the rollback reached before its probe ran never ran B either.
    refused = sorted(n for n in NAMES if any(state == "Failed" for _, state, _ in devices.reports[n]))
    assert refused and set(refused) <= set(failing), refused
    for name in refused:
        assert "ProbeFailed" in (fleet.work / f"{name}.log").read_text(errors="replace")
    assert not any(devices.ran(name, b) for name in failing)
    ran_b = sorted(n for n in cohort if devices.ran(n, b))
    assert set(ran_b) <= cohort - set(failing)
    for name in sorted(outside):  # untouched: same entry, same version, A active all along, no byte of B
        assert desired_entry(objs[name]) == desired_entry(after_a[name])
        assert objs[name]["spec"]["desired"]["version"] == versions[name]
        assert all(active == a for _, _, active in devices.reports[name] if active), devices.reports[name]
        assert fleet.agents[name].slots() == [a]
        assert model_status(objs[name]).get("state") == "Active"
    assert not fleet.dead()

    figures = {
        "devices": len(NAMES), "cohort": len(cohort), "probe_failing": len(failing), "probe_refused": len(refused),
        "ran_b_then_rolled_back": len(ran_b),
        "b_published_seconds": round(published, 1), "b_rolled_back_seconds": round(done, 1),
        "b_phases": [f"{p}/{i}@{t - t0:.1f}s" for t, d, p, i, _ in rollout.phases if d == b],
        "blob_requests": gateway.blob_requests(), "gateway_bytes_served": gateway.bytes_served(),
        "cache_hit": {n: all(s.get("cacheHit") for s in builds.get(n)["status"]["shapes"])
                      for n in ("release-a", "release-b")},
    }  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-probe-rollback.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
