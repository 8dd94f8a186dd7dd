"""Pure builders for the compile Jobs: (build, stage, config) in, a complete Job manifest out."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from bmfleet.pipeline.validate import referenced_claims

TPU_RESOURCE = "sophgo.com/tpu"
CHIP_LABEL = "sophgo.com/chip"
# Everything the worker writes lives under one directory of volumes (the root filesystem is read-only).
POD_ROOT = "/run/bmfleet"
WORK_DIR = f"{POD_ROOT}/work"
INPUTS_DIR = f"{POD_ROOT}/inputs"  # pvc://<claim>/<path> is mounted read-only at INPUTS_DIR/<claim>/<path>
# The worker's result record (JSON) goes where the kubelet reads the termination message: the operator gets
# digest, size and failure reason from the pod status without any other channel.
RESULT_PATH = f"{POD_ROOT}/termination-log"
EXIT_BAD_INPUT = 2  # the worker's exit code for input that no retry can fix (see podFailurePolicy)
NONROOT_UID = 65532


@dataclass(frozen=True)
class Owner:
    """The BModelBuild a child belongs to (for names, labels and the owner reference)."""

    name: str
    namespace: str
    uid: str
    generation: int


@dataclass(frozen=True)
class WorkerConfig:
    """Operator-level settings that shape every Job (from flags or the chart's values)."""

    images: dict[str, str] = field(default_factory=dict)  # toolchain name -> image pinned by digest
    image_pull_policy: str = "IfNotPresent"


def worker_image(spec: BModelBuildSpec, config: WorkerConfig) -> str | None:
    """The image for this build's toolchain: the spec's pin, else the operator default, else None."""
    return spec.toolchain.image or config.images.get(spec.toolchain.name)


def compile_args(spec: BModelBuildSpec, shapes: StageShapes) -> list[str]:
    """`bmfleet worker compile` arguments that fully describe one stage's compile."""
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
        f"--outdir={WORK_DIR}/out",
        f"--result={RESULT_PATH}",
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


def _pod_spec(spec: BModelBuildSpec, shapes: StageShapes, image: str, config: WorkerConfig) -> dict[str, Any]:
    """A pod that passes Pod Security `restricted`: non-root, no privilege escalation, no capabilities,
    RuntimeDefault seccomp, only an emptyDir volume, and no API token (the worker needs none)."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": _node_selector(spec),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "fsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "compile",
                "image": image,
                "imagePullPolicy": config.image_pull_policy,
                "command": ["bmfleet", "worker", "compile"],
                "args": compile_args(spec, shapes),
                "env": [{"name": "TMPDIR", "value": f"{WORK_DIR}/tmp"}, {"name": "HOME", "value": WORK_DIR}],  # noqa: S108
                "resources": _resources(spec),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "work", "mountPath": WORK_DIR}],
                "terminationMessagePath": RESULT_PATH,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [{"name": "work", "emptyDir": {}}],
    }
    claims = sorted(set(referenced_claims(spec).values()))
    for i, claim in enumerate(claims):
        pod["volumes"].append({"name": f"input-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        pod["containers"][0]["volumeMounts"].append(
            {"name": f"input-{i}", "mountPath": f"{INPUTS_DIR}/{claim}", "readOnly": True}
        )
    if spec.placement.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.placement.tolerations]
    if spec.placement.priority_class_name:
        pod["priorityClassName"] = spec.placement.priority_class_name
    return pod


def build_compile_job(
    owner: Owner, spec: BModelBuildSpec, stage: int, shapes: StageShapes, config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The compile Job of one stage.

    Its name hashes everything that goes into the pod, so a spec change that alters a stage yields a new
    name (the old Job is stale and gets deleted), while an unchanged stage keeps its Job across generations
    and operator restarts.
    """
    pod_spec = _pod_spec(spec, shapes, image, config)
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
