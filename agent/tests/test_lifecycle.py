"""Probe and rollback, requested rollback, offline operation, scheduled activation, recovery at start."""

from __future__ import annotations

import json
import os

import pytest

from bmfleet_agent import protocol
from bmfleet_agent.probe import ProbeError
from bmodels import digest
from conftest import install
from test_install import assert_active_verified, links


def failing_for(bad: bytes):
    """A probe that refuses one model (as the runtime would refuse a model that does not load)."""
    bad_digest = digest(bad)

    def probe(path: str, chip: str) -> None:
        if os.path.basename(path) == f"sha256-{bad_digest[7:]}.bmodel":
            raise ProbeError("bmrt: load failed (injected)")

    return probe


def test_probe_failure_rolls_back_to_the_previous_model(make_agent, gateway, v1, v2) -> None:
    agent = make_agent(probe=failing_for(v2))
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    install(agent, gateway, "dev-1", [gateway.model("det", v2)])
    assert links(agent) == (digest(v1), None)
    assert_active_verified(agent, digest(v1))
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["reason"], rep["activeDigest"]) == ("Failed", "ProbeFailed", digest(v1))
    assert "injected" in rep["message"]
    assert not agent.reconciler.dir("det").has_slot(digest(v2))
    served = gateway.served[digest(v2)]
    agent.run_once()  # a failed probe is final for this desired state: no download loop
    assert gateway.served[digest(v2)] == served


def test_probe_failure_of_the_first_model_leaves_nothing_active(make_agent, gateway, v1) -> None:
    agent = make_agent(probe=failing_for(v1))
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    assert links(agent) == (None, None)
    assert gateway.report_model("dev-1", "det")["reason"] == "ProbeFailed"


def test_requested_rollback_uses_the_kept_slot(make_agent, gateway, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    install(agent, gateway, "dev-1", [gateway.model("det", v2)])
    served = dict(gateway.served)
    install(agent, gateway, "dev-1", [{"name": "det", "action": "rollback", "generation": 3}])
    assert links(agent) == (digest(v1), digest(v2))
    assert gateway.report_model("dev-1", "det")["state"] == "RolledBack"
    assert gateway.served == served  # nothing downloaded
    # Asking for the rolled-back-from digest again is an ordinary install from the kept slot.
    install(agent, gateway, "dev-1", [gateway.model("det", v2, generation=4)])
    assert links(agent) == (digest(v2), digest(v1))
    assert gateway.served == served


def test_rollback_without_a_previous_model_fails_cleanly(make_agent, gateway, v1) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    install(agent, gateway, "dev-1", [{"name": "det", "action": "rollback", "digest": digest(b"other")}])
    assert gateway.report_model("dev-1", "det")["reason"] == "NoPrevious"
    assert_active_verified(agent, digest(v1))


def test_offline_keeps_serving_the_current_model(make_agent, gateway, clock, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    gateway.down = True
    gateway.set_desired("dev-1", [gateway.model("det", v2)])
    for _ in range(3):
        pause = agent.step()
        clock.advance(pause)
    assert not agent.online and pause > 0
    assert_active_verified(agent, digest(v1))
    restarted = make_agent()
    restarted.run_once()  # a reboot while offline: recovery re-verifies and keeps it
    assert_active_verified(restarted, digest(v1))
    gateway.down = False
    restarted.run_once()
    assert_active_verified(restarted, digest(v2))


def test_stage_online_then_activate_at_the_scheduled_time_offline(make_agent, gateway, clock, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    at = clock.now() + 3600
    install(agent, gateway, "dev-1", [gateway.model("det", v2, activateAt=protocol.format_time(at))])
    rec = agent.state.models["det"]
    assert (rec.state, rec.staged_digest) == ("Staged", digest(v2))
    assert gateway.report_model("dev-1", "det")["stagedDigest"] == digest(v2)
    assert links(agent)[0] == digest(v1)

    gateway.down = True
    clock.advance(3599)
    agent.step()
    assert links(agent)[0] == digest(v1)
    clock.advance(1)
    agent.step()
    assert links(agent) == (digest(v2), digest(v1))
    assert agent.state.models["det"].state == "Active"


def test_long_poll_is_cut_short_by_a_schedule(make_agent, gateway, clock, v1) -> None:
    agent = make_agent(poll_wait=30)
    gateway.set_desired("dev-1", [gateway.model("det", v1, activateAt=protocol.format_time(clock.now() + 1))])
    agent.step(poll_wait=0)
    assert agent.state.models["det"].state == "Staged"
    agent.step()
    waits = [path for m, path, _ in gateway.requests if "/desired" in path]
    assert "wait=1&" in waits[-1]


def test_recovery_replaces_a_corrupted_active_model(make_agent, gateway, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    install(agent, gateway, "dev-1", [gateway.model("det", v2)])
    d = agent.reconciler.dir("det")
    with open(d.slot(digest(v2)), "r+b") as f:  # bit rot under the active model
        f.seek(100)
        f.write(b"\xff\xff")
    open(d.current_link + ".tmp", "w").close()
    open(d.part(digest(b"stale")), "w").close()
    restarted = make_agent()
    restarted.recover()
    assert links(restarted) == (digest(v1), None)
    rec = restarted.state.models["det"]
    assert (rec.state, rec.reason) == ("Failed", "ActiveVerifyFailed")
    assert sorted(os.listdir(d.path)) == ["current", "slots"]
    assert os.listdir(d.slots) == [f"sha256-{digest(v1)[7:]}.bmodel"]
    restarted.run_once()  # and the desired model comes back from the gateway
    assert_active_verified(restarted, digest(v2))


def test_state_file_records_each_model(make_agent, gateway, v1) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1, rolloutId="r-1", generation=2)])
    with open(agent.state_path) as f:
        doc = json.load(f)
    rec = doc["models"]["det"]
    assert (rec["desired_digest"], rec["active_digest"], rec["state"], rec["rollout_id"]) == (
        digest(v1), digest(v1), "Active", "r-1",
    )  # fmt: skip
    assert doc["desired"]["version"] == doc["desiredVersion"] == 1


@pytest.mark.parametrize("bad", [{"name": "../etc", "digest": digest(b"x")}, {"name": "ok", "digest": "md5:1"}])
def test_a_malformed_entry_is_reported_and_the_rest_applies(make_agent, gateway, v1, bad) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [bad, gateway.model("det", v1)])
    assert_active_verified(agent, digest(v1))
    reasons = {m["name"]: m.get("reason") for m in gateway.last_report("dev-1")["models"]}
    assert reasons[bad["name"]] == "InvalidSpec"
    assert not os.path.exists(os.path.join(agent.config.models_dir, "..", "etc"))


def test_an_unusable_desired_document_is_reported_and_paced(make_agent, gateway, v1) -> None:
    agent = make_agent(poll_wait=30)
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    with gateway.lock:
        gateway.desired["dev-1"] = {"version": "two", "models": []}
        gateway.lock.notify_all()
    pause = agent.step()
    assert pause >= 2.5  # backed off, not straight back into a poll that answers at once
    assert "unusable desired state" in gateway.last_report("dev-1")["lastError"]
    assert_active_verified(agent, digest(v1))
