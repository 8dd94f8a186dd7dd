"""Status from observation: per-stage state from the Jobs, then the conditions and phase that follow.

Pure functions, so the controller only fetches Jobs and writes what these return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bmfleet.api.conditions import (
    COMBINED,
    COMPILED,
    GATES_PASSED,
    PUBLISHED,
    READY,
    RECONCILING,
    STALLED,
    Cond,
    set_condition,
)
from bmfleet.api.shapes import StageShapes, format_shapes
from bmfleet.pipeline.validate import Problem


@dataclass(frozen=True)
class StageJob:
    """A stage, the name of the Job that compiles it, its compile-cache key and, on a hit, what the cache has."""

    index: int
    shapes: StageShapes
    job_name: str
    cache_key: str | None = None
    cached: dict[str, Any] | None = None


_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _time(value: Any) -> str | None:
    """Any RFC 3339 form the API or a client gives (Z, +00:00, datetime) as Kubernetes writes it, in UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text: str = value.strftime(_FMT)
    return text


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.strptime(end, _FMT) - datetime.strptime(start, _FMT)).total_seconds()


def job_state(job: dict[str, Any]) -> dict[str, Any]:
    """State, times and failure reason of one Job, from its status as the Job controller writes it."""
    status = job.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    start, end = _time(status.get("startTime")), _time(status.get("completionTime"))
    out: dict[str, Any] = {"startTime": start}
    if "Complete" in conds:
        out.update(state="Succeeded", completionTime=end, seconds=_seconds(start, end))
    elif "Failed" in conds:
        failed = conds["Failed"]
        end = _time(failed.get("lastTransitionTime")) or end
        out.update(
            state="Failed",
            completionTime=end,
            seconds=_seconds(start, end),
            reason=failed.get("reason") or "JobFailed",
            message=(failed.get("message") or "the compile Job failed")[:4096],
        )
    elif (status.get("ready") or 0) > 0:
        out["state"] = "Running"
    else:
        out["state"] = "Pending"
    return {k: v for k, v in out.items() if v is not None}


RESULT_FIELDS = ("digest", "size", "toolchain", "uri", "stages")


def pod_result(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The worker's result record from a finished pod's termination message. Not JSON (the kubelet fell back
    to the log tail because the worker died before writing it): that text becomes the message."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        text = terminated.get("message")
        if not text:
            continue
        try:
            record = json.loads(text)
        except ValueError:
            return {"message": text[-2048:]}
        if not isinstance(record, dict):
            return {"message": text[-2048:]}
        if terminated.get("exitCode") == 0 and record.get("state") == "Succeeded":
            record["finishedAt"] = terminated.get("finishedAt")
        return record
    return None


def apply_result(entry: dict[str, Any], result: dict[str, Any] | None) -> None:
    """Worker-reported detail: its failure reason beats the Job controller's generic one. A pod that exited 0
    with a Succeeded record finishes the stage at once: the Job controller batches pod updates (about 1 s)
    before it marks the Job Complete, and a pipeline step should not wait for that."""
    if not result:
        return
    if entry["state"] in ("Pending", "Running") and result.get("finishedAt"):
        finished = _time(result["finishedAt"])
        entry.update(state="Succeeded", completionTime=finished, seconds=_seconds(entry.get("startTime"), finished))
    if entry["state"] == "Failed":
        if result.get("reason"):
            entry["reason"] = str(result["reason"])
        if result.get("message"):
            entry["message"] = str(result["message"])[:4096]
    elif entry["state"] == "Succeeded":
        entry.update({k: result[k] for k in RESULT_FIELDS if result.get(k) is not None})


def keep_finished(entry: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """A step recorded as finished stays finished while its Job has not caught up: results come from the
    pod before the Job controller marks the Job (about 1 s later), and a reconcile in between must not see
    the step as running again (it would delete the next step's Job as stale)."""
    if not previous or previous.get("job") != entry.get("job") or entry["state"] not in ("Pending", "Running"):
        return
    if previous.get("state") in ("Succeeded", "Failed"):
        entry.update({k: v for k, v in previous.items() if k != "job"})


def stage_statuses(
    stages: list[StageJob],
    jobs: dict[str, dict[str, Any]],
    previous: list[dict[str, Any]],
    results: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One status entry per stage. A finished stage whose Job was deleted (TTL, manual cleanup) keeps its
    last recorded result instead of going back to Pending."""
    prev_by_job = {p.get("job"): p for p in previous if p.get("state") in ("Succeeded", "Failed")}
    out = []
    for stage in stages:
        entry: dict[str, Any] = {
            "index": stage.index,
            "inputs": stage.shapes,
            "shape": format_shapes(stage.shapes),
            "job": stage.job_name,
        }
        if stage.cache_key:
            entry["cacheKey"] = stage.cache_key
        if stage.job_name not in jobs and stage.cached is not None:
            entry.pop("job")
            entry.update(state="Succeeded", cacheHit=True)
            entry.update({k: v for k, v in stage.cached.items() if k in RESULT_FIELDS})
        elif stage.job_name in jobs:
            entry.update(job_state(jobs[stage.job_name]))
            apply_result(entry, (results or {}).get(stage.job_name))
            keep_finished(entry, prev_by_job.get(stage.job_name))
        elif stage.job_name in prev_by_job:
            kept = prev_by_job[stage.job_name]
            entry.update({k: v for k, v in kept.items() if k not in entry})
        else:
            entry["state"] = "Pending"
        out.append(entry)
    return out


def _compile_conditions(shapes: list[dict[str, Any]]) -> tuple[str, Cond, str]:
    """(outcome, Compiled condition, message): outcome is Failed, Done or Running."""
    total = len(shapes)
    done = sum(1 for s in shapes if s["state"] == "Succeeded")
    failed = [s for s in shapes if s["state"] == "Failed"]
    if failed:
        detail = "; ".join(f"stage {s['index']} ({s['shape']}): {s.get('reason')}: {s.get('message')}" for s in failed)
        return "Failed", Cond(COMPILED, "False", "CompileFailed", detail), detail
    if done == total:
        msg = f"all {total} stage(s) compiled"
        return "Done", Cond(COMPILED, "True", "Compiled", msg), msg
    msg = f"{done}/{total} stage(s) compiled"
    return "Running", Cond(COMPILED, "False", "Compiling", msg), msg


def _overall(outcome: str, reason: str, msg: str) -> tuple[Cond, Cond, Cond]:
    """Ready, Reconciling, Stalled for an overall outcome (Failed, Done or Running)."""
    if outcome == "Failed":
        return (
            Cond(READY, "False", reason, msg),
            Cond(RECONCILING, "False", reason, "no further work for this generation"),
            Cond(STALLED, "True", reason, msg),
        )
    if outcome == "Done":
        return (
            Cond(READY, "True", reason, msg),
            Cond(RECONCILING, "False", reason, msg),
            Cond(STALLED, "False", reason, msg),
        )
    return (
        Cond(READY, "False", reason, msg),
        Cond(RECONCILING, "True", reason, msg),
        Cond(STALLED, "False", reason, msg),
    )


def summarise(
    shapes: list[dict[str, Any]],
    conditions: list[dict[str, Any]],
    generation: int,
    now: str | None = None,
    combine: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    gates: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Conditions and phase for a build whose spec is valid, from its stage entries and, when the build has
    a store to combine into, the resolve and combine steps' entries (None: no such step for this build)."""
    if inputs is not None and inputs["state"] != "Succeeded":
        return _resolving(shapes, conditions, generation, now, inputs)
    outcome, compiled, msg = _compile_conditions(shapes)
    done = sum(1 for s in shapes if s["state"] == "Succeeded")
    steps = [compiled]
    reason = {"Failed": "CompileFailed", "Done": "Compiled", "Running": "Compiling"}[outcome]
    phase = {"Failed": "Failed", "Done": "Compiled", "Running": "Compiling"}[outcome]
    if outcome == "Running" and not done and not any(s["state"] == "Running" for s in shapes):
        phase = "Pending"
    if combine is not None:
        if outcome != "Done":
            steps.append(Cond(COMBINED, "False", "WaitingForCompile" if outcome == "Running" else reason, msg))
        elif combine["state"] == "Succeeded":
            outcome, reason, phase, msg = "Done", "Combined", "Combined", "combined into one bmodel"
            steps.append(Cond(COMBINED, "True", reason, f"{combine.get('uri')} ({combine.get('digest')})"))
        elif combine["state"] == "Failed":
            outcome, reason, phase = "Failed", "CombineFailed", "Failed"
            msg = f"{combine.get('reason')}: {combine.get('message')}"
            steps.append(Cond(COMBINED, "False", reason, msg))
        else:
            outcome, reason, phase, msg = "Running", "Combining", "Combining", "combining the compiled stages"
            steps.append(Cond(COMBINED, "False", reason, msg))
    if gates is not None:
        outcome, reason, phase, msg, gate_cond = _gate_outcome(gates, (outcome, reason, phase, msg), combine)
        steps.append(gate_cond)
    for cond in (*_overall(outcome, reason, msg), *steps):
        conditions = set_condition(conditions, cond, generation, now)
    out: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "shapesReady": f"{done}/{len(shapes)}",
        "conditions": conditions,
        "shapes": shapes,
    }
    if inputs is not None:
        out["inputs"] = inputs
    if combine is not None:
        out["combine"] = combine
    if gates is not None:
        out["gates"] = gates
    return out


def _gate_outcome(
    gates: dict[str, Any], before: tuple[str, str, str, str], combine: dict[str, Any] | None
) -> tuple[str, str, str, str, Cond]:
    """(outcome, reason, phase, message, GatesPassed) once the gate step is known. A failed gate is final for
    this generation (Stalled): the numbers are in the message and in status.gates.checks."""
    outcome, reason, phase, msg = before
    if combine is None or combine.get("state") != "Succeeded":
        return outcome, reason, phase, msg, Cond(GATES_PASSED, "False", "WaitingForCombine", "gates run after combine")
    if gates.get("state") == "Succeeded" and gates.get("passed"):
        text = f"{gates.get('summary')}; report: {gates.get('reportUri')}"
        return "Done", "GatesPassed", "Verified", text, Cond(GATES_PASSED, "True", "GatesPassed", text)
    if gates.get("state") == "Succeeded":
        text = f"gate failed: {gates.get('summary')}"
        return "Failed", "GateFailed", "GateFailed", text, Cond(GATES_PASSED, "False", "GateFailed", text)
    if gates.get("state") == "Failed":
        why = str(gates.get("reason") or "GateRunFailed")
        text = f"the gates could not run: {gates.get('message')}"
        return (
            "Failed",
            why,
            "Stalled" if why == "BadGateInput" else "Failed",
            text,
            Cond(GATES_PASSED, "False", why, text),
        )
    text = "running the precision gates"
    return "Running", "Gating", "Gating", text, Cond(GATES_PASSED, "False", "Gating", text)


def _resolving(
    shapes: list[dict[str, Any]],
    conditions: list[dict[str, Any]],
    generation: int,
    now: str | None,
    inputs: dict[str, Any],
) -> dict[str, Any]:
    """Status while the input digests are resolved (or could not be)."""
    if inputs["state"] == "Failed":
        outcome, reason, phase = "Failed", str(inputs.get("reason") or "ResolveFailed"), "Failed"
        msg = f"resolving the input digests failed: {inputs.get('message')}"
    else:
        outcome, reason, phase, msg = "Running", "ResolvingInputs", "Pending", "resolving the input digests"
    for cond in (*_overall(outcome, reason, msg), Cond(COMPILED, "False", reason, msg)):
        conditions = set_condition(conditions, cond, generation, now)
    return {
        "observedGeneration": generation,
        "phase": phase,
        "shapesReady": f"0/{len(shapes)}",
        "conditions": conditions,
        "shapes": shapes,
        "inputs": inputs,
    }


def stalled(
    problems: list[Problem], conditions: list[dict[str, Any]], generation: int, now: str | None = None
) -> dict[str, Any]:
    """Status of a build that cannot proceed until its spec (or what it refers to) changes."""
    reason = problems[0].reason
    message = "; ".join(str(p) for p in problems)
    for cond in (
        Cond(READY, "False", reason, message),
        Cond(RECONCILING, "False", reason, "waiting for the spec to be fixed"),
        Cond(STALLED, "True", reason, message),
        Cond(COMPILED, "False", reason, message),
    ):
        conditions = set_condition(conditions, cond, generation, now)
    return {
        "observedGeneration": generation,
        "phase": "Stalled",
        "shapesReady": None,
        "conditions": conditions,
        "shapes": [],
    }


def publish_step_status(status: dict[str, Any], publish: dict[str, Any], generation: int) -> dict[str, Any]:
    """The build's status with the publish (registry push) step: Published follows it; a push that failed
    leaves the build Ready (the model is verified) but Published=False with the registry's reason."""
    if publish["state"] == "Succeeded":
        cond = Cond(PUBLISHED, "True", "Pushed", f"{publish.get('uri')} (manifest {publish.get('manifest')})")
    elif publish["state"] == "Failed":
        cond = Cond(PUBLISHED, "False", str(publish.get("reason") or "PublishFailed"), str(publish.get("message")))
    else:
        cond = Cond(PUBLISHED, "False", "Pushing", "pushing the artifact to the registry")
    return {**status, "publish": publish, "conditions": set_condition(list(status["conditions"]), cond, generation)}
