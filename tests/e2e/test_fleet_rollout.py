"""The fleet path end to end: a real TPU-MLIR build is pushed to a real registry, its spec.publish rollout goes
through phases 10% → 50% → 100% over 50 real agent processes (plus 3 BM1684X boxes it must skip), every byte
reaching a device through the gateway from the registry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from bmfleet.cli.devenv import OperatorProcess, wait_for
from tests.e2e.conftest import Env
from tests.e2e.recording import (
    DeviceHistory,
    Recorder,
    RolloutHistory,
    condition,
    desired_entry,
    model_status,
    wait_registered,
)
from tests.e2e.support import MODEL, Fleet, GatewayProcess, release_build
from tests.integration.conftest import ARTIFACTS, Builds, scrape
from tests.store.servers import Server

pytestmark = pytest.mark.toolchain

KEY = "fleet50"
CAMS, OTHERS = [f"f50-{i:02d}" for i in range(50)], [f"f50-x{i}" for i in range(3)]
LABELS = {"app": "cam", "e2e": KEY}


@pytest.mark.timeout(1200)
def test_rollout_to_fifty_agents(
    e2e: Env, builds: Builds, operator: OperatorProcess, registry: Server, gateway: GatewayProcess, fleet: Fleet,
    api: ApiClient,
    record: Callable[..., Recorder],
) -> None:  # fmt: skip
    devices, rollout = DeviceHistory(), RolloutHistory(KEY)
    record("edgedevices", devices, f"e2e={KEY}")
    record("bmodelrollouts", rollout)
    started = time.monotonic()
    fleet.start(CAMS, labels=LABELS)
    fleet.start(OTHERS, chip="BM1684X", labels=LABELS)
    wait_registered(devices, CAMS + OTHERS, fleet)
    registered = time.monotonic() - started

    strategy = {"phases": [{"percent": 10}, {"percent": 50}, {"percent": 100}], "maxInFlight": 50}
    selector = {"matchLabels": {"app": "cam", "e2e": KEY}}
    t0 = time.monotonic()
    builds.create(release_build(KEY, e2e.inputs, registry.port, {"modelName": MODEL, "selector": selector,
                                                                  "strategy": strategy}))  # fmt: skip
    st = builds.wait_condition(KEY, "Published", "True", timeout=900)["status"]
    published = time.monotonic() - t0
    digest, size = st["combine"]["digest"], int(st["combine"]["size"])
    assert st["publish"]["uri"] == f"oci://127.0.0.1:{registry.port}/models/{MODEL}@{digest}"

    wait_for(lambda: rollout.status.get("phase") == "Completed", 300, "the rollout Completed", interval=0.2)
    done = time.monotonic() - t0
    final = rollout.status
    assert final["artifact"]["digest"] == digest
    counts = final["counts"]
    assert (counts["selected"], counts["skipped"], counts["targeted"], counts["active"]) == (53, 3, 50, 50)
    assert counts["failed"] == counts["rolledBack"] == 0

    # Phases in order: 10% (5 devices), 50% (25), 100% (50), then Completed.
    path = rollout.path(digest)
    progressing = [i for p, i in path if p == "Progressing"]
    assert progressing == [0, 1, 2] and path[-1] == ("Completed", 2), path
    # Gating, in the API server's order of writes: the 6th device got its entry only once the first 5 (10%) were
    # Active, the 26th only once those 25 (50%) were; until then only those had spec.desired.
    assigned = [a for a in devices.assignments if a.digest == digest]
    assert sorted(a.device for a in assigned) == CAMS and all(a.action == "install" for a in assigned)
    assert [a.holders for a in assigned] == list(range(50))  # one entry each, never rewritten
    for cohort in (5, 25):
        nxt = assigned[cohort]
        assert nxt.done == cohort, f"device {cohort + 1} assigned while only {nxt.done}/{cohort} were Active"
    at_10 = assigned[5].t - assigned[4].t  # how long exactly 10% held the release

    # Every BM1684 device runs the combined bmodel; the BM1684X boxes never had an entry nor a byte.
    objs = devices.snapshot()
    for name in CAMS:
        got = model_status(objs[name])
        assert (got.get("state"), got.get("activeDigest")) == ("Active", digest), (name, got)
        assert fleet.agents[name].slots() == [digest]
    assert not any(a.device in OTHERS for a in devices.assignments)
    for name in OTHERS:
        assert desired_entry(objs[name]) is None and not devices.reports.get(name)
        assert fleet.agents[name].slots() == [] and not list((fleet.agents[name].state_dir / "models").glob("*/*"))
        assert condition(objs[name], "Online") == "True"  # they were there all along, and skipped
    served = gateway.blob_requests()
    assert set(served) <= {"200", "206"} and sum(served.values()) >= 50, served  # nobody was refused a blob
    assert gateway.bytes_served() == 50 * size
    # 50 devices, one fetch from the registry into the gateway's cache.
    assert gateway.metrics().get(("bmfleet_gateway_blob_fetches_total", (("result", "ok"),))) == 1.0
    assert not fleet.dead()

    # The operator's /metrics: rollout devices by state are the sum of every rollout's status counts.
    def metrics_match_status() -> bool:
        rollouts = CustomObjectsApi(api).list_cluster_custom_object("bmfleet.io", "v1alpha1", "bmodelrollouts")
        metrics = scrape(operator)
        return all(
            metrics.get(f'bmfleet_rollout_devices{{state="{state}"}}')
            == sum(int((r.get("status") or {}).get("counts", {}).get(state, 0)) for r in rollouts["items"])
            for state in ("active", "failed", "skipped", "rolledBack")
        )

    wait_for(metrics_match_status, 30, "/metrics rollout devices to match the rollouts' status counts")
    assert scrape(operator)['bmfleet_rollout_devices{state="active"}'] >= 50

    figures: dict[str, Any] = {
        "devices": {"BM1684": len(CAMS), "BM1684X": len(OTHERS)},
        "seconds": {
            "registered": round(registered, 1), "published": round(published, 1), "completed": round(done, 1),
            "rollout": round(done - published, 1), "held_at_10pct": round(at_10, 2),
            **{f"{p}/{i}": round(t - t0, 1) for t, d, p, i, _ in rollout.phases if d == digest},
        },
        "bmodel_bytes": size, "gateway_bytes_served": gateway.bytes_served(), "blob_requests": served,
        "cache_hit": all(s.get("cacheHit") for s in st.get("shapes") or []),
    }  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-fleet50.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
