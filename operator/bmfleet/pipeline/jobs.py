"""Pure builders for the compile Jobs: (build, stage, config) in, a complete Job manifest out."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.shapes import StageShapes, format_shapes
from bmfleet.pipeline.names import ANNOTATION_SHAPE, LABEL_STAGE, digest
from bmfleet.pipeline.pods import (
    CHIP_LABEL,
    RESULT_PATH,
    TPU_RESOURCE,
    WORK_DIR,
    WorkerConfig,
    store_args,
    worker_image,
    worker_pod,
)
from bmfleet.pipeline.stepjob import Owner, step_job

__all__ = ["Owner", "WorkerConfig", "build_compile_job", "compile_args", "compile_cache_key", "worker_image"]


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
            ("--calibration-sha256", spec.calibration.sha256),
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
    args += [f"{flag}={value}" for flag, value in optional if value is not None]
    return args if store is not None else args + store_args(spec)


def node_selector(spec: BModelBuildSpec) -> dict[str, str]:
    selector = dict(spec.placement.node_selector or {})
    selector[CHIP_LABEL] = spec.chip.lower()
    return dict(sorted(selector.items()))


def tpu_resources(spec: BModelBuildSpec) -> dict[str, dict[str, str]]:
    requests = dict(spec.placement.resources.requests)
    limits = dict(spec.placement.resources.limits)
    if spec.placement.tpu > 0:
        # Extended resources must be integers with request == limit (the scheduler enforces capacity).
        requests[TPU_RESOURCE] = limits[TPU_RESOURCE] = str(spec.placement.tpu)
    return {"requests": requests, "limits": limits}


# An input pinned by its digest is identified by the digest alone: the same content at another URI hits.
_LOCATORS = {
    "--model": "--model-sha256",
    "--weights": "--weights-sha256",
    "--calibration-dataset": "--calibration-sha256",
}


def compile_cache_key(namespace: str, spec: BModelBuildSpec, shapes: StageShapes, image: str) -> str | None:
    """What makes a compiled stage reusable: the input digests, the worker image (toolchain identity) and
    every other compile argument (options, shape, chip, precision, store), per namespace (a store claim is
    namespaced). None while an input has no digest yet (the resolve step pins them first)."""
    args = dict(a.split("=", 1) for a in compile_args(spec, shapes))
    if any(flag in args and pin not in args for flag, pin in _LOCATORS.items()):
        return None
    kept = sorted(f"{k}={v}" for k, v in args.items() if k not in _LOCATORS)
    return digest({"ns": namespace, "image": image, "args": kept}, 32)


def build_compile_job(
    owner: Owner, spec: BModelBuildSpec, stage: int, shapes: StageShapes, config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The compile Job of one stage (a spec change that alters the stage yields a new name)."""
    pod_spec = worker_pod(
        spec,
        step="compile",
        args=compile_args(spec, shapes),
        image=image,
        config=config,
        node_selector=node_selector(spec),
        resources=tpu_resources(spec),
        with_inputs=True,
    )
    return step_job(
        owner,
        "compile",
        pod_spec,
        dict(spec.placement.pod_annotations or {}),
        backoff_limit=spec.compile.retries,
        deadline_seconds=spec.compile.timeout_seconds,
        labels={LABEL_STAGE: str(stage)},
        annotations={ANNOTATION_SHAPE: format_shapes(shapes)},
    )
