"""The chart's Argo CD health scripts (charts/bmfleet/argocd/), run in Lua 5.1 as Argo CD runs them: their own
health_test.yaml cases, and every combination of the kstatus inputs against the kstatus oracle."""

import itertools

import pytest

from tests.helpers import kstatus
from tests.helpers.argocd import ARGO_STATUSES, HEALTH_DIR, KINDS, health, health_tests, run, script

CASES = [(kind, path) for kind in KINDS for path, _, _ in health_tests(kind)]


def test_one_script_per_kind_and_nothing_else():
    assert sorted(p.name for p in HEALTH_DIR.iterdir()) == sorted(KINDS)
    for kind in KINDS:
        assert (HEALTH_DIR / kind / "health.lua").is_file()
        assert f"resource.customizations.health.bmfleet.io_{kind}" in script(kind)


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_health_test_yaml_cases(kind, path):
    _, obj, expected = next(t for t in health_tests(kind) if t[0] == path)
    assert obj["kind"] == kind
    assert health(kind, obj) == (expected["status"], expected["message"])


def test_fixtures_cover_every_status_each_kind_can_report():
    reported = {kind: {t[2]["status"] for t in health_tests(kind)} for kind in KINDS}
    assert reported["BModelBuild"] == {"Progressing", "Healthy", "Degraded"}
    assert reported["BModelRollout"] == {"Progressing", "Healthy", "Degraded", "Suspended"}
    assert reported["EdgeDevice"] == {"Progressing", "Healthy", "Degraded"}


def _condition(kind, status, reason="Some"):
    return {"type": kind, "status": status, "reason": reason, "message": f"{kind} is {status}"}


STATES = (None, "True", "False", "Unknown")


def _matrix():
    """Every combination of Ready/Reconciling/Stalled (absent, True, False, Unknown), observed or not."""
    for ready, reconciling, stalled, observed in itertools.product(STATES, STATES, STATES, (1, 2, None)):
        conditions = [
            _condition(t, s) for t, s in (("Ready", ready), ("Reconciling", reconciling), ("Stalled", stalled)) if s
        ]
        status = {"conditions": conditions}
        if observed is not None:
            status["observedGeneration"] = observed
        yield {"metadata": {"name": "x", "generation": 2}, "spec": {}, "status": status}


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_kstatus_whenever_the_operator_has_reported(kind):
    """Where status.observedGeneration is set, Argo's verdict is kstatus' verdict, but for one contradiction
    bmfleet never writes: Reconciling and Stalled both True, where kstatus takes whichever comes first in the
    list and the scripts say Degraded. Without observedGeneration the scripts say Progressing (waiting for
    the operator) where kstatus, reading a missing condition as all-is-well, says Current: a build nobody
    reconciled yet must not look Healthy."""
    checked = 0
    for obj in _matrix():
        obj["kind"] = kind
        got, message = health(kind, obj)
        assert got in ARGO_STATUSES and message
        true = {c["type"] for c in obj["status"]["conditions"] if c["status"] == "True"}
        observed = obj["status"].get("observedGeneration")
        if observed is None:
            assert got == "Progressing", obj
        elif observed == 2 and {"Reconciling", "Stalled"} <= true:
            assert (got, kstatus.argo_health(obj)) == ("Degraded", "Progressing"), obj
        else:
            assert got == kstatus.argo_health(obj), obj
            checked += 1
    assert checked == 128 - 4  # 4 Ready states x (Reconciling=True, Stalled=True) at the observed generation


def test_deletion_wins_over_everything():
    obj = {"kind": "BModelBuild", "metadata": {"generation": 1, "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    obj["status"] = {"observedGeneration": 1, "conditions": [_condition("Stalled", "True")]}
    assert health("BModelBuild", obj) == ("Progressing", "being deleted")
    assert kstatus.compute(obj).status == kstatus.TERMINATING


def test_gate_failed_is_degraded_even_before_stalled_is_set():
    """Stricter than kstatus on purpose: a failed precision gate is final for that generation."""
    obj = {"kind": "BModelBuild", "metadata": {"generation": 1}}
    obj["status"] = {"observedGeneration": 1, "conditions": [_condition("Ready", "False", "GateFailed")]}
    assert health("BModelBuild", obj)[0] == "Degraded"
    assert kstatus.argo_health(obj) == "Progressing"
    assert health("EdgeDevice", {**obj, "kind": "EdgeDevice"})[0] == "Progressing"


@pytest.mark.parametrize("spec_paused", [True, False])
def test_paused_rollout_is_suspended_unless_stalled(spec_paused):
    status = {"observedGeneration": 1, "conditions": [_condition("Reconciling", "True")]}
    if not spec_paused:
        status["phase"] = "Paused"
    obj = {"kind": "BModelRollout", "metadata": {"generation": 1}, "spec": {"paused": spec_paused}, "status": status}
    assert health("BModelRollout", obj)[0] == "Suspended"
    status["conditions"].append(_condition("Stalled", "True"))
    assert health("BModelRollout", obj)[0] == "Degraded"
    assert health("BModelBuild", {**obj, "kind": "BModelBuild"})[0] == "Degraded"


def test_the_runner_closes_what_argo_cd_leaves_closed():
    """So a script that used string, math, os or io would fail the cases above, as it would in Argo CD."""
    assert run("return {status = 'Healthy', message = tostring(#{1, 2})}", {}) == ("Healthy", "2")
    for lib in ("string.upper('x')", "math.floor(1)", "os.time()", "io.write('x')"):
        with pytest.raises(Exception, match="attempt to index"):
            run(f"return {{status = {lib}, message = ''}}", {})
