"""Semantic validation (what CEL cannot say) and status derived from Jobs."""

import copy

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.conditions import get_condition
from bmfleet.pipeline.status import StageJob, job_state, stage_statuses, stalled, summarise
from bmfleet.pipeline.validate import parse_spec, referenced_claims, resolve_stages, unsupported_fields


def _spec(raw):
    spec, problems = parse_spec(raw)
    assert problems == []
    return spec


def test_sample_is_valid(sample_build):
    spec = _spec(sample_build["spec"])
    stages, problems = resolve_stages(spec)
    assert problems == [] and stages == [[[4, 3, 300, 300]], [[1, 3, 300, 300]]]
    assert unsupported_fields(spec) == []


def test_duplicate_stages_input_count_and_maxn_in_string_form(sample_build):
    raw = copy.deepcopy(sample_build["spec"])
    raw["shapes"] = [{"shape": "[4,3,300,300]"}, {"inputs": [[4, 3, 300, 300]]}, {"shape": "[8,3,300,300],[8,1]"}]
    _, problems = resolve_stages(_spec(raw))
    text = "\n".join(map(str, problems))
    assert "spec.shapes[1]: [4,3,300,300] repeats spec.shapes[0]" in text
    assert "spec.shapes[2]: has 2 input shape(s) but spec.shapes[0] has 1" in text
    assert "spec.shapes[2]: batch 8 exceeds compile.maxN 4" in text


def test_unparseable_spec_becomes_problems_not_a_crash():
    spec, problems = parse_spec({"model": {"format": "onnx"}, "shapes": "nope"})
    assert spec is None
    fields = {p.field for p in problems}
    assert "spec.model.uri" in fields and "spec.shapes" in fields


def test_schema_only_fields_are_reported_not_ignored(sample_build):
    raw = copy.deepcopy(sample_build["spec"])
    raw["gates"] = {"similarity": {}}
    raw["model"]["uri"] = "oci://registry.local/models/ssd:1"
    problems = unsupported_fields(_spec(raw))
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"spec.gates", "spec.gates.similarity", "spec.model.uri"}
    assert by_field["spec.model.uri"].reason == "NotImplemented"
    gates = [str(p) for p in problems if p.field.startswith("spec.gates")]
    assert any("onnxruntime" in t for t in gates)  # a umodel has no FP32 reference here
    assert any("set spec.output.store" in t for t in gates)
    assert any("set spec.calibration" in t for t in gates)


def test_pvc_claims_are_found(sample_build):
    raw = copy.deepcopy(sample_build["spec"])
    raw["model"]["uri"] = "pvc://models/ssd/a.prototxt"
    raw["model"]["weightsUri"] = "pvc://weights/ssd/a.umodel"
    assert referenced_claims(_spec(raw)) == {"spec.model.uri": "models", "spec.model.weightsUri": "weights"}


def _job(conditions=(), **status):
    return {"status": {"conditions": list(conditions), **status}}


def test_job_states():
    assert job_state(_job())["state"] == "Pending"
    assert job_state(_job(ready=1, startTime="2026-01-01T00:00:00Z"))["state"] == "Running"
    done = job_state(
        _job(
            [{"type": "Complete", "status": "True"}],
            startTime="2026-01-01T00:00:00Z",
            completionTime="2026-01-01T00:01:30Z",
        )
    )
    assert done == {
        "state": "Succeeded",
        "startTime": "2026-01-01T00:00:00Z",
        "completionTime": "2026-01-01T00:01:30Z",
        "seconds": 90.0,
    }
    failed = job_state(
        _job(
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": "2026-01-01T00:00:10Z",
                }
            ],
            startTime="2026-01-01T00:00:00Z",
        )
    )
    assert failed["state"] == "Failed" and failed["reason"] == "BackoffLimitExceeded" and failed["seconds"] == 10.0


def test_status_summary_and_carry_forward():
    stages = [StageJob(0, [[4, 3, 300, 300]], "b-compile-1"), StageJob(1, [[1, 3, 300, 300]], "b-compile-2")]
    jobs = {"b-compile-1": _job([{"type": "Complete", "status": "True"}])}
    entries = stage_statuses(stages, jobs, [])
    assert [e["state"] for e in entries] == ["Succeeded", "Pending"]
    st = summarise(entries, [], 2, now="t0")
    assert st["phase"] == "Compiling" and st["shapesReady"] == "1/2" and st["observedGeneration"] == 2
    assert get_condition(st["conditions"], "Reconciling")["status"] == "True"
    assert get_condition(st["conditions"], "Ready")["status"] == "False"
    # The second Job finishes; the first Job was deleted meanwhile (e.g. by a TTL): its result is kept.
    jobs = {"b-compile-2": _job([{"type": "Complete", "status": "True"}])}
    entries = stage_statuses(stages, jobs, entries)
    assert [e["state"] for e in entries] == ["Succeeded", "Succeeded"]
    st = summarise(entries, st["conditions"], 2, now="t1")
    assert st["phase"] == "Compiled"
    ready = get_condition(st["conditions"], "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == "t1"
    assert get_condition(st["conditions"], "Compiled")["status"] == "True"
    assert get_condition(st["conditions"], "Reconciling")["lastTransitionTime"] == "t1"
    assert get_condition(st["conditions"], "Stalled")["lastTransitionTime"] == "t0"


def test_failed_stage_stalls_with_the_reason():
    stages = [StageJob(0, [[1, 2]], "j")]
    jobs = {"j": _job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}])}
    st = summarise(stage_statuses(stages, jobs, []), [], 1)
    assert st["phase"] == "Failed"
    stalled_cond = get_condition(st["conditions"], "Stalled")
    assert stalled_cond["status"] == "True" and "DeadlineExceeded: too slow" in stalled_cond["message"]


def test_stalled_status_names_fields(sample_build):
    raw = copy.deepcopy(sample_build["spec"])
    raw["shapes"] = [{"shape": "[4,3,300,300]"}, {"shape": "[4,3,300,300]"}]
    _, problems = resolve_stages(BModelBuildSpec.model_validate(raw))
    st = stalled(problems, [], 5)
    cond = get_condition(st["conditions"], "Stalled")
    assert cond["status"] == "True" and cond["reason"] == "InvalidSpec"
    assert cond["message"].startswith("spec.shapes[1]:")
    assert st["phase"] == "Stalled" and st["observedGeneration"] == 5


def test_times_in_any_rfc3339_form_are_normalised():
    from datetime import UTC, datetime

    out = job_state(
        _job(
            [{"type": "Complete", "status": "True"}],
            startTime="2026-01-01T00:00:00+00:00",
            completionTime=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
        )
    )
    assert out["startTime"] == "2026-01-01T00:00:00Z" and out["completionTime"] == "2026-01-01T00:00:05Z"
    assert out["seconds"] == 5.0
    assert job_state(_job(startTime="garbage"))["state"] == "Pending"
