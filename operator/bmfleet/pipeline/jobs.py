"""Pure builders for the compile Jobs: (build, stage, config) in, a complete Job manifest out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.common import API_VERSION
from bmfleet.api.shapes import StageShapes, format_shapes
from bmfleet.pipeline.names import (
    ANNOTATION_GENERATION,
    ANNOTATION_HASH,
    ANNOTATION_SHAPE,
    LABEL_STAGE,
    child_name,
    digest,
    standard_labels,
)
from bmfleet.pipeline.pods import (
    CHIP_LABEL,
    EXIT_BAD_INPUT,
    RESULT_PATH,
    TPU_RESOURCE,
    WORK_DIR,
    WorkerConfig,
    store_claim,
    worker_image,
    worker_pod,
)

__all__ = ["Owner", "WorkerConfig", "build_compile_job", "compile_args", "compile_cache_key", "worker_image"]


@dataclass(frozen=True)
class Owner:
    """The BModelBuild a child belongs to (for names, labels and the owner reference)."""

    name: str
    namespace: str
    uid: str
    generation: int


def compile_args(
    spec: BModelBuildSpec,
    shapes: StageShapes,
    outdir: str = f"{WORK_DIR}/out",
    result: str = RESULT_PATH,
    store: str | None = None,
) -> list[str]:
    """`bmfleet worker compile` arguments that fully describe one stage's compile. `outdir`, `result` and
    `store` default to the Job's paths; `bmfleet build --local` passes its own."""
    opts = spec.compile
    args = [
        f"--toolchain={spec.toolchain.name}",
        f"--model-format={spec.model.format}",
        f"--model={spec.model.uri}",
        f"--chip={spec.chip}",
        f"--precision={spec.precision}",
        f"--shapes={format_shapes(shapes)}",
        f"--opt={opts.opt}",
        f"--dyn={str(opts.dyn).lower()}",
        f"--cmp={str(opts.cmp).lower()}",
        f"--mode={opts.mode}",
        f"--outdir={outdir}",
        f"--result={result}",
    ]
    optional: list[tuple[str, object | None]] = [
        ("--weights", spec.model.weights_uri),
        ("--model-sha256", spec.model.sha256),
        ("--weights-sha256", spec.model.weights_sha256),
        ("--net-name", spec.net_name),
        ("--max-n", opts.max_n),
    ]
    if spec.calibration is not None:
        optional += [
            ("--calibration-dataset", spec.calibration.dataset_uri),
            ("--calibration-samples", spec.calibration.samples),
        ]
    if spec.preprocess is not None:
        pre = spec.preprocess
        optional += [
            ("--mean", ",".join(repr(v) for v in pre.mean) if pre.mean else None),
            ("--scale", ",".join(repr(v) for v in pre.scale) if pre.scale else None),
            ("--pixel-format", pre.pixel_format),
            ("--channel-format", pre.channel_format),
            ("--keep-aspect-ratio", "true" if pre.keep_aspect_ratio else None),
        ]
    if opts.keep_outputs:
        optional.append(("--keep-outputs", "true"))
    if store is not None:
        optional.append(("--store", store))
    elif store_claim(spec) is not None and spec.output is not None and spec.output.store is not None:
        optional.append(("--store", spec.output.store.uri))
    args += [f"{flag}={value}" for flag, value in optional if value is not None]
    return args


def _node_selector(spec: BModelBuildSpec) -> dict[str, str]:
    selector = dict(spec.placement.node_selector or {})
    selector[CHIP_LABEL] = spec.chip.lower()
    return dict(sorted(selector.items()))


def _resources(spec: BModelBuildSpec) -> dict[str, dict[str, str]]:
    requests = dict(spec.placement.resources.requests)
    limits = dict(spec.placement.resources.limits)
    if spec.placement.tpu > 0:
        # Extended resources must be integers with request == limit (the scheduler enforces capacity).
        requests[TPU_RESOURCE] = limits[TPU_RESOURCE] = str(spec.placement.tpu)
    return {"requests": requests, "limits": limits}


def compile_cache_key(namespace: str, spec: BModelBuildSpec, shapes: StageShapes, image: str) -> str:
    """What makes a compiled stage reusable: the worker image (toolchain identity) and the full compile
    arguments (inputs and their declared digests, options, shape, chip, precision, store), per namespace
    (a store claim is namespaced). Inputs without a declared sha256 are trusted by URI."""
    return digest({"ns": namespace, "image": image, "args": compile_args(spec, shapes)}, 32)


def build_compile_job(
    owner: Owner, spec: BModelBuildSpec, stage: int, shapes: StageShapes, config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The compile Job of one stage.

    Its name hashes everything that goes into the pod, so a spec change that alters a stage yields a new
    name (the old Job is stale and gets deleted), while an unchanged stage keeps its Job across generations
    and operator restarts.
    """
    pod_spec = worker_pod(
        spec,
        step="compile",
        args=compile_args(spec, shapes),
        image=image,
        config=config,
        node_selector=_node_selector(spec),
        resources=_resources(spec),
        with_inputs=True,
    )
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.compile.retries,
        "activeDeadlineSeconds": spec.compile.timeout_seconds,
        # Exit code 2 means bad input: retrying cannot help, so fail the Job at once.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "compile", "operator": "In", "values": [EXIT_BAD_INPUT]},
                }
            ]
        },
    }
    pod_annotations = dict(spec.placement.pod_annotations or {})
    spec_hash = digest({"pod": pod_spec, "job": job_spec, "annotations": pod_annotations})
    labels = standard_labels(owner.name, "compile") | {LABEL_STAGE: str(stage)}
    job_spec["template"] = {
        "metadata": {"labels": dict(labels), **({"annotations": pod_annotations} if pod_annotations else {})},
        "spec": pod_spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_name(owner.name, "compile", spec_hash),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_SHAPE: format_shapes(shapes),
                ANNOTATION_GENERATION: str(owner.generation),
                ANNOTATION_HASH: spec_hash,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "BModelBuild",
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
