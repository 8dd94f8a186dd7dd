"""The rollout planner: phases, chips, in-flight limit, timeouts, offline devices, abort and rollback, late
joiners, pauses and determinism. A small fleet simulator applies each plan and reports device states."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bmfleet.api.rollout import BModelRolloutSpec, LabelSelector
from bmfleet.pipeline.rollout import Artifact, Device, Plan, RolloutRef, order_key, plan, targets
from bmfleet.pipeline.selectors import selects

D = "sha256:" + "d" * 64
OLD = "sha256:" + "0" * 64
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ART = Artifact(D, "pvc://store/models/blobs/sha256/" + "d" * 64, 1234, "BM1684")
REF = RolloutRef(name="det", uid="uid-1", generation=1)


def spec(**strategy: Any) -> BModelRolloutSpec:
    return BModelRolloutSpec.model_validate(
        {"artifact": {"build": "b"}, "modelName": "det", "selector": {"matchLabels": {"fleet": "a"}},
         "strategy": strategy}
    )  # fmt: skip


def fleet(n: int, chip: str = "BM1684", prefix: str = "dev", online: bool = True) -> list[Device]:
    """Devices already running OLD."""
    model = {"name": "det", "state": "Active", "activeDigest": OLD}
    return [Device(f"{prefix}{i:03d}", chip, {"fleet": "a"}, online, model) for i in range(n)]


class Fleet:
    """Devices by name; `apply` writes a plan's entries as the controller would."""

    def __init__(self, devices: list[Device]) -> None:
        self.devices = {d.name: d for d in devices}
        self.status: dict[str, Any] | None = None

    def plan(self, now: datetime, s: BModelRolloutSpec | None = None, ref: RolloutRef = REF) -> Plan:
        p = plan(s or spec(), ART, list(self.devices.values()), now, self.status, ref)
        self.status = p.status
        for name, entry in p.desired.items():
            self.devices[name] = dataclasses.replace(self.devices[name], desired=entry, assigned_at=now)
        return p

    def report(self, name: str, **model: Any) -> None:
        self.devices[name] = dataclasses.replace(self.devices[name], model={"name": "det", **model})

    def activate(self, names: Any) -> None:
        for n in names:
            self.report(n, state="Active", activeDigest=D, previousDigest=OLD, desiredDigest=D)

    def assigned(self) -> list[str]:
        return sorted(n for n, d in self.devices.items() if (d.desired or {}).get("digest") == D)

    def set(self, name: str, **changes: Any) -> None:
        self.devices[name] = dataclasses.replace(self.devices[name], **changes)


def test_targets_are_cumulative_rounded_up_with_an_implicit_last_phase() -> None:
    s = spec(phases=[{"percent": 10}, {"percent": 50}, {"percent": 100}])
    assert targets(s.strategy.phases, 50) == [5, 25, 50]
    assert targets(s.strategy.phases, 7) == [1, 4, 7]
    assert targets(s.strategy.phases, 0) == [0, 0, 0]
    assert targets(spec(phases=[{"count": 3}, {"percent": 20}]).strategy.phases, 50) == [3, 10, 50]
    assert targets(spec(phases=[{"count": 80}]).strategy.phases, 50) == [50]


def test_phases_10_50_100_over_50_devices() -> None:
    f = Fleet(fleet(50))
    p = f.plan(T0)
    assert len(p.desired) == 5 and f.status is not None
    assert (f.status["phase"], f.status["currentPhase"], f.status["counts"]["targeted"]) == ("Progressing", 0, 5)
    entry = next(iter(p.desired.values()))
    assert entry == {"name": "det", "action": "install", "digest": D, "size": 1234, "chip": "BM1684",
                     "uri": ART.uri, "rollout": "det", "generation": 1}  # fmt: skip
    assert f.plan(T0 + timedelta(seconds=1)).desired == {}  # nothing new until the cohort finishes
    cohort = f.assigned()
    f.activate(cohort[:4])
    assert f.plan(T0 + timedelta(seconds=2)).desired == {} and f.status["currentPhase"] == 0
    f.activate(cohort)
    p = f.plan(T0 + timedelta(seconds=3))
    assert f.status["currentPhase"] == 1 and len(p.desired) == 20 and len(f.assigned()) == 25
    assert set(cohort) <= set(f.assigned())
    f.activate(f.assigned())
    p = f.plan(T0 + timedelta(seconds=4))
    assert f.status["currentPhase"] == 2 and len(f.assigned()) == 50
    f.activate(f.assigned())
    f.plan(T0 + timedelta(seconds=5))
    assert f.status["phase"] == "Completed" and f.status["counts"]["active"] == 50
    conds = {c["type"]: c["status"] for c in f.status["conditions"]}
    assert conds == {"Ready": "True", "Reconciling": "False", "Stalled": "False", "Progressing": "False",
                     "Aborted": "False"}  # fmt: skip


def test_other_chip_is_skipped_counted_and_never_assigned() -> None:
    f = Fleet(fleet(40) + fleet(10, chip="BM1684X", prefix="x"))
    for step in range(6):
        f.activate(f.assigned())
        f.plan(T0 + timedelta(seconds=step))
    assert f.status is not None and f.status["phase"] == "Completed"
    counts = f.status["counts"]
    assert (counts["selected"], counts["skipped"], counts["targeted"], counts["active"]) == (50, 10, 40, 40)
    assert all(f.devices[f"x{i:03d}"].desired is None for i in range(10))
    assert "10 skipped (not BM1684)" in next(c for c in f.status["conditions"] if c["type"] == "Ready")["message"]


def test_max_in_flight_limits_online_devices_not_done() -> None:
    f = Fleet(fleet(30))
    s = spec(phases=[{"percent": 100}], maxInFlight=5)
    assert len(f.plan(T0, s).desired) == 5
    f.activate(f.assigned()[:2])
    f.report(f.assigned()[2], state="Failed", desiredDigest=D, reason="ProbeFailed", activeDigest=OLD)
    assert len(f.plan(T0, s).desired) == 3  # two active and one failed free three slots
    assert len(f.assigned()) == 8


def test_offline_devices_take_no_slot_and_hold_a_phase_only_until_their_timeout() -> None:
    devices = fleet(10)
    f = Fleet(devices)
    s = spec(phases=[{"percent": 50}, {"percent": 100}], maxInFlight=2, deviceTimeoutSeconds=600)
    first = sorted(devices, key=lambda d: order_key(REF.uid, d.name))
    for d in first[:3]:
        f.set(d.name, online=False)
    f.plan(T0, s)
    # three offline devices come first in order: assigned without slots, then two online ones.
    assert f.assigned() == sorted(d.name for d in first[:5])
    f.activate([d.name for d in first[3:5]])
    f.plan(T0 + timedelta(seconds=599), s)
    assert f.status is not None and f.status["currentPhase"] == 0  # they may still come back
    f.plan(T0 + timedelta(seconds=600), s)
    assert f.status["currentPhase"] == 1  # no longer waited for
    assert f.status["counts"]["offline"] == 3 and f.status["counts"]["failed"] == 0  # away is not failed
    for d in first[:3]:
        assert (f.devices[d.name].desired or {}).get("digest") == D  # still assigned: converges later
    f.set(first[0].name, online=True, online_since=T0 + timedelta(seconds=700))
    f.plan(T0 + timedelta(seconds=701), s)
    assert f.status["counts"]["failed"] == 0 and f.status["counts"]["offline"] == 2  # back: its clock restarts


def test_stuck_online_device_times_out_counted_failed() -> None:
    f = Fleet(fleet(10))
    s = spec(phases=[{"count": 2}, {"percent": 100}], deviceTimeoutSeconds=60, abort={"minDevices": 50})
    f.plan(T0, s)
    a, b = f.assigned()
    f.activate([a])
    f.report(b, state="Downloading", desiredDigest=D, bytes=10, size=1234)
    f.plan(T0 + timedelta(seconds=59), s)
    assert f.status is not None and f.status["currentPhase"] == 0 and f.status["counts"]["downloading"] == 1
    f.plan(T0 + timedelta(seconds=60), s)
    assert f.status["currentPhase"] == 1 and f.status["counts"]["failed"] == 1
    f.activate([b])  # it converged after all: counted active from then on
    f.plan(T0 + timedelta(seconds=61), s)
    assert f.status["counts"]["active"] == 2 and f.status["counts"]["failed"] == 0


def test_timeout_counts_from_coming_back_online() -> None:
    f = Fleet(fleet(1))
    s = spec(phases=[{"percent": 100}], deviceTimeoutSeconds=60)
    f.plan(T0, s)
    name = f.assigned()[0]
    f.set(name, online_since=T0 + timedelta(seconds=3600))
    f.plan(T0 + timedelta(seconds=3630), s)
    assert f.status is not None and f.status["counts"]["failed"] == 0
    f.plan(T0 + timedelta(seconds=3660), s)
    assert f.status["counts"]["failed"] == 1


def _fail(f: Fleet, names: list[str]) -> None:
    for n in names:
        f.report(n, state="Failed", reason="ProbeFailed", desiredDigest=D, activeDigest=OLD, previousDigest=None)


def test_abort_above_threshold_after_min_devices_then_rollback() -> None:
    f = Fleet(fleet(50))
    s = spec(phases=[{"percent": 20}, {"percent": 100}])
    f.plan(T0, s)
    cohort = f.assigned()
    assert len(cohort) == 10
    _fail(f, cohort[:1])
    f.activate(cohort[1:3])
    f.plan(T0, s)  # 1 failed of 3 finished: above 10% but fewer than minDevices (5) finished
    assert f.status is not None and f.status["phase"] == "Progressing"
    f.activate(cohort[3:9])
    f.plan(T0, s)  # 1 of 9 = 11%: abort
    assert f.status["phase"] == "Aborted"
    entries = {n: f.devices[n].desired for n in cohort}
    assert all(e is not None and e["action"] == "rollback" for e in entries.values())
    assert entries[cohort[3]] == {"name": "det", "action": "rollback", "rollout": "det", "generation": 1,
                                  "digest": OLD}  # fmt: skip
    assert entries[cohort[0]] is not None and entries[cohort[0]]["digest"] == OLD  # never activated: stays
    assert len(f.assigned()) == 0 and all(f.devices[n].desired is None for n in f.devices if n not in cohort)
    conds = {c["type"]: c for c in f.status["conditions"]}
    assert conds["Aborted"]["status"] == "True" and conds["Reconciling"]["status"] == "True"
    assert f.plan(T0, s).desired == {}  # idempotent
    for n in cohort[:9]:
        f.report(n, state="RolledBack", activeDigest=OLD, desiredDigest=OLD)
    f.plan(T0, s)
    assert f.status["phase"] == "Aborted"  # the tenth is still rolling back
    f.set(cohort[9], online=False)
    f.plan(T0 + timedelta(seconds=899), s)
    assert f.status["phase"] == "Aborted"  # offline: waited for until its timeout
    f.plan(T0 + timedelta(seconds=900), s)
    assert f.status["phase"] == "RolledBack" and f.status["counts"]["rolledBack"] == 9
    conds = {c["type"]: c for c in f.status["conditions"]}
    assert conds["Stalled"]["status"] == "True" and conds["Ready"]["reason"] == "RolledBack"


def test_exactly_at_the_threshold_does_not_abort() -> None:
    f = Fleet(fleet(100))
    f.plan(T0)
    cohort = f.assigned()
    _fail(f, cohort[:1])
    f.activate(cohort[1:10])
    f.plan(T0)
    assert f.status is not None and f.status["phase"] == "Progressing" and f.status["currentPhase"] == 1


def test_abort_without_auto_rollback_stops_and_stalls() -> None:
    f = Fleet(fleet(10))
    s = spec(phases=[{"percent": 50}, {"percent": 100}], autoRollback=False, abort={"minDevices": 2})
    f.plan(T0, s)
    _fail(f, f.assigned()[:2])
    p = f.plan(T0, s)
    assert p.desired == {} and f.status is not None and f.status["phase"] == "Aborted"
    assert {c["type"]: c["status"] for c in f.status["conditions"]}["Stalled"] == "True"
    f.activate(f.assigned())
    assert f.plan(T0, s).desired == {} and f.status["phase"] == "Aborted"


def test_late_joiner_gets_the_release_at_once() -> None:
    f = Fleet(fleet(4))
    s = spec(phases=[{"percent": 50}, {"percent": 100}], maxInFlight=1)
    for step in range(8):
        f.activate(f.assigned())
        f.plan(T0 + timedelta(seconds=step), s)
    assert f.status is not None and f.status["phase"] == "Completed"
    for d in fleet(3, prefix="new"):
        f.devices[d.name] = d
    p = f.plan(T0 + timedelta(seconds=10), s)
    assert sorted(p.desired) == ["new000", "new001", "new002"]  # all at once, maxInFlight does not apply
    assert f.status["phase"] == "Completed"


def test_plans_are_deterministic_and_stable_across_restarts() -> None:
    devices = fleet(50)
    one = plan(spec(), ART, devices, T0, None, REF)
    two = plan(spec(), ART, list(reversed(devices)), T0, None, REF)
    assert one.desired == two.desired and one.status == two.status
    other = plan(spec(), ART, devices, T0, None, dataclasses.replace(REF, uid="uid-2"))
    assert set(other.desired) != set(one.desired)  # another rollout, another canary cohort
    # A restarted operator plans from what it wrote: no new writes, same status.
    f = Fleet(devices)
    f.plan(T0)
    status = f.status
    assert f.plan(T0).desired == {} and f.status == status


def test_new_generation_alone_rewrites_nothing() -> None:
    f = Fleet(fleet(20))
    f.plan(T0)
    p = f.plan(T0, ref=dataclasses.replace(REF, generation=2))
    assert p.desired == {} and f.status is not None and f.status["observedGeneration"] == 2


def test_timed_pause_then_next_phase() -> None:
    f = Fleet(fleet(10))
    s = spec(phases=[{"percent": 50, "pause": {"seconds": 30}}, {"percent": 100}])
    f.plan(T0, s)
    f.activate(f.assigned())
    f.plan(T0 + timedelta(seconds=5), s)
    assert f.status is not None and f.status["phaseCompletedAt"] == "2026-01-01T00:00:05Z"
    assert f.status["phase"] == "Progressing" and f.status["currentPhase"] == 0
    assert f.plan(T0 + timedelta(seconds=34), s).desired == {}
    assert len(f.plan(T0 + timedelta(seconds=35), s).desired) == 5 and f.status["currentPhase"] == 1
    assert f.status["phaseCompletedAt"] is None


def test_manual_pause_waits_for_the_promote_annotation() -> None:
    f = Fleet(fleet(10))
    s = spec(phases=[{"percent": 50, "pause": {"manual": True}}, {"percent": 100}])
    f.plan(T0, s)
    f.activate(f.assigned())
    assert f.plan(T0 + timedelta(hours=5), s).desired == {}
    assert f.status is not None and f.status["phase"] == "Paused"
    ready = next(c for c in f.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "WaitingForPromotion" and "rollouts.bmfleet.io/promote=1" in ready["message"]
    assert f.plan(T0, s, dataclasses.replace(REF, promote=0)).desired == {}
    assert len(f.plan(T0, s, dataclasses.replace(REF, promote=1)).desired) == 5
    assert f.status["phase"] == "Progressing"


def test_spec_paused_assigns_nothing_new() -> None:
    f = Fleet(fleet(10))
    running = spec(phases=[{"percent": 50}, {"percent": 100}])
    paused = running.model_copy(update={"paused": True})
    assert f.plan(T0, paused).desired == {} and f.status is not None and f.status["phase"] == "Paused"
    assert {c["type"]: c["status"] for c in f.status["conditions"]}["Reconciling"] == "False"
    assert len(f.plan(T0, running).desired) == 5


def test_new_artifact_starts_over_at_phase_zero() -> None:
    f = Fleet(fleet(10))
    for step in range(5):
        f.activate(f.assigned())
        f.plan(T0 + timedelta(seconds=step))
    assert f.status is not None and f.status["phase"] == "Completed"
    new = Artifact("sha256:" + "e" * 64, "pvc://store/x/blobs/sha256/" + "e" * 64, 99, "BM1684")
    p = plan(spec(), new, list(f.devices.values()), T0, f.status, REF)
    assert len(p.desired) == 1 and p.status["currentPhase"] == 0 and p.status["phase"] == "Progressing"


def test_devices_held_by_another_rollout_are_left_alone() -> None:
    devices = fleet(10)
    theirs = {"name": "det", "action": "install", "digest": OLD, "rollout": "other"}
    devices = [dataclasses.replace(d, desired=theirs) if i < 4 else d for i, d in enumerate(devices)]
    p = plan(
        spec(phases=[{"percent": 100}]), ART, devices, T0, None, dataclasses.replace(REF, others=frozenset({"other"}))
    )
    assert sorted(p.desired) == [f"dev{i:03d}" for i in range(4, 10)]
    # The other rollout is gone: its devices are taken over.
    assert len(plan(spec(phases=[{"percent": 100}]), ART, devices, T0, None, REF).desired) == 10


def test_selector_expressions() -> None:
    sel = LabelSelector.model_validate(
        {"matchLabels": {"site": "a"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["canary", "prod"]},
            {"key": "broken", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["z9"]},
            {"key": "rack", "operator": "Exists"}]}
    )  # fmt: skip
    ok = {"site": "a", "tier": "prod", "zone": "z1", "rack": "r1"}
    assert selects(sel, ok)
    for bad in ({"site": "b"}, {"tier": "dev"}, {"broken": "yes"}, {"zone": "z9"}):
        assert not selects(sel, ok | bad)
    assert not selects(sel, {k: v for k, v in ok.items() if k != "rack"})
    assert selects(LabelSelector(), {})


@pytest.mark.parametrize("n", [1, 7, 50, 333])
def test_each_phase_gets_exactly_its_ceil_share(n: int) -> None:
    f = Fleet(fleet(n))
    seen = []
    for step in range(10):
        f.plan(T0 + timedelta(seconds=step), spec(maxInFlight=1000))
        seen.append(len(f.assigned()))
        f.activate(f.assigned())
    assert sorted(set(seen)) == sorted({math.ceil(n * 0.1), math.ceil(n * 0.5), n})


def test_download_failures_the_agent_retries_do_not_abort_but_time_out() -> None:
    """A registry outage makes a whole cohort report DownloadFailed (the agent retries with backoff): that is
    still downloading, not a failed device, until the device timeout says otherwise (found by tests/e2e)."""
    f = Fleet(fleet(50))
    s = spec(phases=[{"percent": 20}, {"percent": 100}], deviceTimeoutSeconds=600)
    f.plan(T0, s)
    cohort = f.assigned()
    for n in cohort:
        f.report(n, state="Failed", reason="DownloadFailed", desiredDigest=D, activeDigest=OLD)
    f.plan(T0 + timedelta(seconds=30), s)
    assert f.status is not None and f.status["phase"] == "Progressing"
    assert f.status["counts"]["failed"] == 0 and f.status["counts"]["downloading"] == len(cohort)
    f.activate(cohort)
    f.plan(T0 + timedelta(seconds=60), s)
    assert f.status["currentPhase"] == 1 and f.status["counts"]["failed"] == 0
    stuck = Fleet(fleet(50))
    stuck.plan(T0, s)
    for n in stuck.assigned():
        stuck.report(n, state="Failed", reason="DigestMismatch", desiredDigest=D, activeDigest=OLD)
    stuck.plan(T0 + timedelta(seconds=601), s)
    assert stuck.status is not None and stuck.status["counts"]["failed"] == len(stuck.assigned())
