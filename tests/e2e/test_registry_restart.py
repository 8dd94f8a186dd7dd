"""The registry goes away while a rollout runs: the first cohort's devices ask the gateway for the blob while the
registry is down (the gateway answers 502, the agents report DownloadFailed and retry), the registry comes back on
the same port with the same disk, and the rollout still completes with every device running the release. A
retried DownloadFailed is work in flight (bounded by deviceTimeoutSeconds), not a failure that counts to abort."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest

from bmfleet.cli.devenv import OperatorProcess, wait_for
from tests.e2e.conftest import Env
from tests.e2e.recording import DeviceHistory, Recorder, RolloutHistory, condition, model_status, wait_registered
from tests.e2e.support import MODEL, Fleet, GatewayProcess, release_build
from tests.integration.conftest import ARTIFACTS, Builds
from tests.store.servers import Server

pytestmark = pytest.mark.toolchain

KEY = "restart"
NAMES = [f"rr-{i:02d}" for i in range(10)]


def publish_job_exists(builds: Builds, build: str) -> bool:
    return any((j.metadata.labels or {}).get("bmfleet.io/step") == "publish" for j in builds.jobs(build) if j.metadata)


@pytest.mark.timeout(1200)
def test_registry_restart_mid_rollout_completes(
    e2e: Env, builds: Builds, operator: OperatorProcess, registry: Server, gateway: GatewayProcess, fleet: Fleet,
    record: Callable[..., Recorder],
) -> None:  # fmt: skip
    devices, rollout = DeviceHistory(), RolloutHistory(KEY)
    record("edgedevices", devices, f"e2e={KEY}")
    record("bmodelrollouts", rollout)
    agents = fleet.start(NAMES, labels={"app": "cam", "e2e": KEY})
    wait_registered(devices, NAMES, fleet)

    rollout_spec = {"modelName": MODEL, "selector": {"matchLabels": {"app": "cam", "e2e": KEY}},
                    "strategy": {"phases": [{"percent": 50}, {"percent": 100}]}}  # fmt: skip
    t0 = time.monotonic()
    builds.create(release_build(KEY, e2e.inputs, registry.port, rollout_spec))
    # The gateway fetches a blob from the registry when the first device asks for it, and keeps it. To be sure the
    # registry is down at that moment, the boxes are frozen (SIGSTOP) from just before the push until the first
    # cohort holds its entries and the registry is stopped: they then all ask while it is down.
    wait_for(lambda: publish_job_exists(builds, KEY), 900, "the publish Job", interval=0.2)
    for a in agents:
        a.proc.send_signal(signal.SIGSTOP)
    try:
        st = builds.wait_condition(KEY, "Published", "True", timeout=300)["status"]
        digest, size = st["combine"]["digest"], int(st["combine"]["size"])
        first = wait_for(
            lambda: c if len(c := {a.device for a in devices.assignments if a.digest == digest}) >= 5 else None,
            60, "the first cohort's entries",
        )  # fmt: skip
        assert gateway.blob_requests() == {}  # nobody asked yet: the gateway has nothing cached
        registry.stop()
        down_at = time.monotonic()
    finally:
        for a in agents:
            a.proc.send_signal(signal.SIGCONT)
    # Each device of the first cohort asks; the gateway cannot fetch the blob and says so (502, Retry-After).
    wait_for(lambda: gateway.blob_requests().get("502", 0) >= len(first), 60, "502s for the first cohort")

    def download_failed() -> set[str]:
        objs = devices.snapshot()
        return {n for n in first if model_status(objs[n]).get("reason") == "DownloadFailed"}

    reported = wait_for(download_failed, 60, "DownloadFailed reported by a device")
    registry.start()  # same port, same disk: the pushed blob is still there
    down_for = time.monotonic() - down_at

    wait_for(lambda: rollout.status.get("phase") in ("Completed", "Aborted", "RolledBack"), 300, "the rollout ended")
    assert rollout.status["phase"] == "Completed", rollout.status
    done = time.monotonic() - t0
    counts = rollout.status["counts"]
    assert (counts["targeted"], counts["active"], counts["failed"]) == (10, 10, 0), counts
    assert [i for p, i in rollout.path(digest) if p == "Progressing"][-2:] == [0, 1]
    objs = devices.snapshot()
    for name in NAMES:
        got = model_status(objs[name])
        assert (got.get("state"), got.get("activeDigest")) == ("Active", digest), (name, got)
        assert condition(objs[name], "Online") == "True"
        assert fleet.agents[name].slots() == [digest] and fleet.agents[name].partials() == []
    served = gateway.blob_requests()
    assert served.get("200", 0) + served.get("206", 0) >= 10 and set(served) <= {"200", "206", "502"}, served
    assert gateway.bytes_served() == 10 * size  # failed requests sent no body bytes
    assert "fetching " + digest in gateway.log.read_text(errors="replace")  # the gateway said why it failed
    assert not fleet.dead()

    figures = {
        "devices": len(NAMES), "first_cohort": len(first), "registry_down_seconds": round(down_for, 1),
        "devices_reporting_DownloadFailed": len(reported), "blob_requests": served, "bmodel_bytes": size,
        "completed_seconds": round(done, 1), "registry_starts": registry.starts,
        "cache_hit": all(s.get("cacheHit") for s in st.get("shapes") or []),
    }  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-registry-restart.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
