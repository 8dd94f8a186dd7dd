"""BModelBuild controller: validate, keep one compile Job per stage, report status. Level-based: every
trigger (create, spec change, resume, any change of a child Job) runs the same `reconcile`."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.shapes import StageShapes, format_shapes
from bmfleet.controllers.kube import Kube
from bmfleet.controllers.publish import publish_rollout
from bmfleet.pipeline.combine import build_combine_job, combine_cache_key, combine_inputs
from bmfleet.pipeline.gate import build_gate_job
from bmfleet.pipeline.jobs import Owner, WorkerConfig, build_compile_job, compile_cache_key, worker_image
from bmfleet.pipeline.pods import output_store
from bmfleet.pipeline.publish import build_publish_job
from bmfleet.pipeline.resolve import build_resolve_job, pin, unpinned, uris_key
from bmfleet.pipeline.status import (
    RESULT_FIELDS,
    StageJob,
    apply_result,
    job_state,
    keep_finished,
    pod_result,
    publish_step_status,
    stage_statuses,
    stalled,
    summarise,
)
from bmfleet.pipeline.validate import Problem, parse_spec, referenced_claims, resolve_stages, unsupported_fields

# Builds are reconciled from their own handlers and from their Jobs' events, in kopf's thread pool. A fixed
# set of striped locks serialises work per build without a per-object dict that would need cleaning up
# (dask-kubernetes leaked such a dict: its lock keys were built two different ways).
_LOCKS = tuple(threading.Lock() for _ in range(64))


def build_lock(namespace: str, name: str) -> threading.Lock:
    """The lock that serialises reconciles of one build."""
    return _LOCKS[zlib.crc32(f"{namespace}/{name}".encode()) % len(_LOCKS)]


@dataclass
class Outcome:
    """What one reconcile did: the status it wants, Jobs it made or removed, and whether to retry later."""

    status: dict[str, Any]
    created: list[tuple[int, str]]
    deleted: list[str]
    retry_after: float | None = None


def _problems(
    kube: Kube, namespace: str, spec: BModelBuildSpec, config: WorkerConfig
) -> tuple[list[StageShapes], list[Problem]]:
    stages, problems = resolve_stages(spec)
    problems += unsupported_fields(spec)
    if worker_image(spec, config) is None:
        problems.append(
            Problem(
                "spec.toolchain.image",
                f"no worker image for toolchain {spec.toolchain.name}: pin one here or configure the operator",
                reason="NoWorkerImage",
            )
        )
    claims = referenced_claims(spec)
    missing = {c for c in set(claims.values()) if not kube.pvc_exists(namespace, c)}  # one GET per claim
    for field_name, claim in claims.items():
        if claim in missing:
            problems.append(
                Problem(
                    field_name,
                    f"PersistentVolumeClaim {claim!r} not found in namespace {namespace}",
                    reason="InputNotFound",
                )
            )
    return stages, problems


Cache = Callable[[str], dict[str, Any] | None]


def no_cache(_: str) -> None:
    """A cache that never hits."""
    return None


def reconcile(
    kube: Kube, body: dict[str, Any], config: WorkerConfig, cache: Cache = no_cache, pod_finished: bool = False
) -> Outcome:
    """Bring the build's Jobs and status in line with its spec (idempotent). `cache` maps a compile- or
    combine-cache key to an artifact some build already produced (only builds with a store use it).
    `pod_finished`: a worker pod just finished, so its result record is worth reading before its Job says so."""
    meta = body["metadata"]
    ns, name, uid, generation = meta["namespace"], meta["name"], meta["uid"], int(meta.get("generation", 1))
    old_status = body.get("status") or {}
    conditions = list(old_status.get("conditions") or [])
    existing = kube.list_jobs(ns, name, uid)

    spec, problems = parse_spec(body.get("spec") or {})
    stages: list[StageShapes] = []
    if spec is not None:
        stages, problems = _problems(kube, ns, spec, config)
    if spec is None or problems:
        # Jobs of an older spec describe nothing the user asks for now: remove them.
        for job_name in existing:
            kube.delete_job(ns, job_name)
        retry = 10.0 if any(p.reason == "InputNotFound" for p in problems) else None
        return Outcome(stalled(problems, conditions, generation), [], list(existing), retry)

    image = worker_image(spec, config)
    assert image is not None  # checked in _problems
    owner = Owner(name=name, namespace=ns, uid=uid, generation=generation)
    caching = output_store(spec) is not None
    # Result records are in finished pods: read them once a pod or a Job has finished, not on every tick.
    finished = any(job_state(j)["state"] in ("Succeeded", "Failed") for j in existing.values())
    pods = kube.latest_pods(ns, name) if existing and (pod_finished or finished) else {}
    results = {job: r for job, pod in pods.items() if (r := pod_result(pod))}
    created: list[tuple[int, str]] = []
    inputs: dict[str, Any] | None = None
    desired_names: set[str] = set()
    ctx = StepContext(kube, existing, results)
    if caching and unpinned(spec):
        inputs = _resolve(ctx, owner, spec, old_status.get("inputs"), config, image)
        resolve_job = str(inputs["job"])
        desired_names.add(resolve_job)
        if resolve_job not in existing:
            created.append((-2, resolve_job))
        if inputs["state"] != "Succeeded":
            deleted = [j for j in existing if j not in desired_names]
            for job_name in deleted:
                kube.delete_job(ns, job_name)
            waiting = [
                {"index": i, "inputs": st, "shape": format_shapes(st), "state": "Pending"}
                for i, st in enumerate(stages)
            ]
            return Outcome(summarise(waiting, conditions, generation, inputs=inputs), created, deleted)
        spec = pin(spec, inputs["digests"])
    desired = [build_compile_job(owner, spec, i, shapes, config, image) for i, shapes in enumerate(stages)]
    desired_names |= {m["metadata"]["name"] for m in desired}
    jobs = {n: j for n, j in existing.items() if n in desired_names}
    stage_jobs = []
    for i, (shapes, manifest) in enumerate(zip(stages, desired, strict=True)):
        job_name = manifest["metadata"]["name"]
        key = compile_cache_key(ns, spec, shapes, image) if caching else None
        cached = cache(key) if key and job_name not in jobs else None
        if job_name not in jobs and cached is None:
            jobs[job_name], was_created = kube.create_job(manifest)
            if was_created:
                created.append((i, job_name))
        stage_jobs.append(StageJob(i, shapes, job_name, key, cached))
    shapes_status = stage_statuses(stage_jobs, jobs, list(old_status.get("shapes") or []), results)

    combine: dict[str, Any] | None = None
    if caching:  # a build with a store is also combined
        previous = old_status.get("combine")
        combine, combine_job, made = _combine(kube, owner, spec, shapes_status, existing, results, config, image, cache)
        if combine_job:
            keep_finished(combine, previous)
            desired_names.add(combine_job)
            if made:
                created.append((-1, combine_job))
    gates: dict[str, Any] | None = None
    if caching and spec.gates is not None:
        gates = _gate(ctx, owner, spec, combine, old_status.get("gates"), config, image)
    status = summarise(shapes_status, conditions, generation, combine=combine, inputs=inputs, gates=gates)
    if caching and (publish := _publish(ctx, owner, spec, status, old_status.get("publish"), config, image)):
        status = publish_step_status(status, publish, generation)
    for entry, step in ((gates, -3), (status.get("publish"), -4)):
        if entry and entry.get("job"):
            desired_names.add(str(entry["job"]))
            if entry["job"] not in existing:
                created.append((step, str(entry["job"])))
    deleted = [job_name for job_name in existing if job_name not in desired_names]
    for job_name in deleted:
        kube.delete_job(ns, job_name)
    return Outcome(publish_rollout(kube, body, status), created, deleted)


@dataclass(frozen=True)
class StepContext:
    """What every single-Job step needs from the reconcile that runs it."""

    kube: Kube
    existing: dict[str, dict[str, Any]]
    results: dict[str, dict[str, Any]]


def run_step(
    ctx: StepContext, manifest: dict[str, Any], previous: dict[str, Any] | None, fields: tuple[str, ...], failed: str
) -> dict[str, Any]:
    """Create the step's Job if needed and read its state; a worker that exited 0 with its record finishes the
    step before the Job says so. `fields` are copied from the record on success; a finished step stays finished
    (its Job may be gone after its TTL, or not have caught up yet)."""
    job_name = manifest["metadata"]["name"]
    if previous and previous.get("job") == job_name and previous.get("state") in ("Succeeded", "Failed"):
        return dict(previous)
    job = ctx.existing.get(job_name)
    if job is None:
        job, _ = ctx.kube.create_job(manifest)
    entry: dict[str, Any] = {"job": job_name, "state": job_state(job)["state"]}
    result = ctx.results.get(job_name) or {}
    if result.get("finishedAt"):
        entry["state"] = "Succeeded"
    if entry["state"] == "Succeeded":
        entry.update({k: result[k] for k in fields if k in result})
    elif entry["state"] == "Failed":
        entry.update(reason=result.get("reason") or failed, message=str(result.get("message"))[:4096])
    return entry


GATE_FIELDS = ("passed", "summary", "checks", "reportUri", "resultUri", "seconds")


def _gate(
    ctx: StepContext, owner: Owner, spec: BModelBuildSpec, combine: dict[str, Any] | None,
    previous: dict[str, Any] | None, config: WorkerConfig, image: str,
) -> dict[str, Any]:  # fmt: skip
    """The gate step once the combined bmodel is stored."""
    if combine is None or combine.get("state") != "Succeeded" or not combine.get("uri"):
        return {"state": "Pending"}
    manifest = build_gate_job(owner, spec, str(combine["uri"]), config, image)
    return run_step(ctx, manifest, previous, GATE_FIELDS, "GateRunFailed")


def _resolve(
    ctx: StepContext, owner: Owner, spec: BModelBuildSpec, previous: dict[str, Any] | None,
    config: WorkerConfig, image: str,
) -> dict[str, Any]:  # fmt: skip
    """The resolve step's status entry, with the digests once it succeeded."""
    entry = run_step(ctx, build_resolve_job(owner, spec, config, image), previous, ("digests",), "ResolveFailed")
    entry["uris"] = uris_key(spec)
    if entry["state"] == "Succeeded":
        entry.setdefault("digests", {})
    return entry


def _publish(
    ctx: StepContext, owner: Owner, spec: BModelBuildSpec, status: dict[str, Any],
    previous: dict[str, Any] | None, config: WorkerConfig, image: str,
) -> dict[str, Any] | None:  # fmt: skip
    """The publish step (push to the OCI registry) once the build is Ready; None when it does not push."""
    if spec.publish is None or spec.publish.registry is None:
        return None
    ready: dict[str, Any] = next((c for c in status["conditions"] if c["type"] == "Ready"), {})
    if ready.get("status") != "True":
        return {"state": "Pending"}
    manifest = build_publish_job(owner, spec, status, config, image)
    return run_step(ctx, manifest, previous, ("manifest", "uri"), "PublishFailed")


def _combine(
    kube: Kube,
    owner: Owner,
    spec: BModelBuildSpec,
    shapes: list[dict[str, Any]],
    existing: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    config: WorkerConfig,
    image: str,
    cache: Cache,
) -> tuple[dict[str, Any], str | None, bool]:
    """The combine step once every stage is stored: (status entry, its Job's name, whether it was created)."""
    if any(s["state"] != "Succeeded" for s in shapes):
        return {"state": "Pending"}, None, False
    missing = [s["index"] for s in shapes if not s.get("uri")]
    if missing:
        message = f"stage(s) {missing} finished without reporting a stored bmodel"
        return {"state": "Failed", "reason": "MissingArtifact", "message": message}, None, False
    inputs = combine_inputs(shapes)
    manifest = build_combine_job(owner, spec, inputs, config, image)
    job_name = manifest["metadata"]["name"]
    key = combine_cache_key(owner.namespace, spec, inputs)
    made = False
    job = existing.get(job_name)
    if job is None:
        cached = cache(key)
        if cached is not None:
            hit: dict[str, Any] = {k: cached[k] for k in RESULT_FIELDS if k in cached}
            return {"state": "Succeeded", "cacheKey": key, "cacheHit": True, **hit}, None, False
        job, made = kube.create_job(manifest)
    entry: dict[str, Any] = {"job": job_name, "cacheKey": key, **job_state(job)}
    apply_result(entry, results.get(job_name))
    return entry, job_name, made


def status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether writing `new` would change anything (None means absent). Unchanged status is not written,
    so a reconcile that finds nothing new makes no API write and triggers no watch event."""
    return any(old.get(k) != v for k, v in new.items() if not (v is None and k not in old))
