"""The resolve step: before a build with a store compiles, learn the content digest of every input the spec
names by URI only, so the compile cache keys on content (a changed file at the same URI misses) and the
compile Jobs verify exactly that content. Declared digests need no resolve step."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.names import digest
from bmfleet.pipeline.pods import RESULT_PATH, WorkerConfig, worker_pod
from bmfleet.pipeline.stepjob import Owner, step_job

RESOLVE_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def inputs_of(spec: BModelBuildSpec) -> dict[str, tuple[str, str | None]]:
    """Each input by name: (URI, declared sha256 or None)."""
    out: dict[str, tuple[str, str | None]] = {"model": (spec.model.uri, spec.model.sha256)}
    if spec.model.weights_uri:
        out["weights"] = (spec.model.weights_uri, spec.model.weights_sha256)
    if spec.calibration is not None:
        out["calibration"] = (spec.calibration.dataset_uri, spec.calibration.sha256)
    return out


def unpinned(spec: BModelBuildSpec) -> dict[str, str]:
    """Inputs without a declared digest: name -> URI."""
    return {name: uri for name, (uri, sha) in inputs_of(spec).items() if sha is None}


def uris_key(spec: BModelBuildSpec) -> str:
    """Identifies what a resolve result was for: the unpinned inputs' URIs."""
    return digest(unpinned(spec), 16)


def pin(spec: BModelBuildSpec, digests: dict[str, str]) -> BModelBuildSpec:
    """The spec with resolved digests declared, as if the user had written them."""
    model = spec.model.model_copy(
        update={
            "sha256": spec.model.sha256 or digests.get("model"),
            "weights_sha256": spec.model.weights_sha256 or (digests.get("weights") if spec.model.weights_uri else None),
        }
    )
    update: dict[str, Any] = {"model": model}
    if spec.calibration is not None:
        sha = spec.calibration.sha256 or digests.get("calibration")
        update["calibration"] = spec.calibration.model_copy(update={"sha256": sha})
    return spec.model_copy(update=update)


def resolve_args(spec: BModelBuildSpec, result: str = RESULT_PATH) -> list[str]:
    """`bmfleet worker resolve` arguments: one --input NAME=URI per unpinned input."""
    return [*(f"--input={name}={uri}" for name, uri in sorted(unpinned(spec).items())), f"--result={result}"]


def build_resolve_job(owner: Owner, spec: BModelBuildSpec, config: WorkerConfig, image: str) -> dict[str, Any]:
    """The resolve Job: hashes the inputs where they are (no TPU; any node that can mount the input claims).
    Its name hashes the URIs and the build generation, so each generation reads the inputs afresh."""
    pod = worker_pod(
        spec,
        step="resolve",
        args=resolve_args(spec),
        image=image,
        config=config,
        node_selector={},
        resources=RESOLVE_RESOURCES,
        with_inputs=True,
        with_store_secret=False,  # it hashes the inputs where they are; the store is not its business
    )
    annotations = dict(spec.placement.pod_annotations or {})
    extra = {"generation": owner.generation}
    return step_job(owner, "resolve", pod, annotations, backoff_limit=2, deadline_seconds=900, hash_extra=extra)
