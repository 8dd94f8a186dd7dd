"""The worker pod every Job runs: one container of the bmfleet image, Pod Security `restricted`, volumes only
under POD_ROOT, and the result record where the kubelet reports the termination message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.validate import referenced_claims

TPU_RESOURCE = "sophgo.com/tpu"
CHIP_LABEL = "sophgo.com/chip"
# Everything the worker reads or writes lives in volumes under one directory (the root filesystem is read-only).
POD_ROOT = "/run/bmfleet"
WORK_DIR = f"{POD_ROOT}/work"
TMP_DIR = f"{WORK_DIR}/tmp"  # noqa: S108  (inside the pod's own emptyDir, not the host's /tmp)
INPUTS_DIR = f"{POD_ROOT}/inputs"  # pvc://<claim>/<path> inputs: the claim is mounted read-only here
STORE_DIR = f"{POD_ROOT}/store"  # a pvc:// store: its claim is mounted read-write here
# The worker's result record (JSON) goes where the kubelet reads the termination message: the operator gets
# digest, size and failure reason from the pod status without any other channel.
RESULT_PATH = f"{POD_ROOT}/termination-log"
EXIT_BAD_INPUT = 2  # the worker's exit code for input that no retry can fix (see podFailurePolicy)
NONROOT_UID = 65532


@dataclass(frozen=True)
class WorkerConfig:
    """Operator-level settings that shape every Job (from flags or the chart's values)."""

    images: dict[str, str] = field(default_factory=dict)  # toolchain name -> image pinned by digest
    image_pull_policy: str = "IfNotPresent"


def worker_image(spec: BModelBuildSpec, config: WorkerConfig) -> str | None:
    """The image for this build's toolchain: the spec's pin, else the operator default, else None."""
    return spec.toolchain.image or config.images.get(spec.toolchain.name)


def store_claim(spec: BModelBuildSpec) -> str | None:
    """The claim of a pvc:// output store, if the build has one."""
    store = spec.output.store if spec.output else None
    if store is None or store.type != "pvc":
        return None
    return store.uri.removeprefix("pvc://").split("/", 1)[0]


def _mount_claims(pod: dict[str, Any], spec: BModelBuildSpec, with_inputs: bool) -> None:
    """One volume per claim: input claims read-only at INPUTS_DIR/<claim>, the store's read-write at
    STORE_DIR/<claim> (a claim holding both is one volume with two mounts)."""
    store = store_claim(spec)
    inputs = {c for f, c in referenced_claims(spec).items() if f != "spec.output.store.uri"} if with_inputs else set()
    mounts = pod["containers"][0]["volumeMounts"]
    for i, claim in enumerate(sorted(inputs | ({store} if store else set()))):
        name = f"claim-{i}"
        pod["volumes"].append({"name": name, "persistentVolumeClaim": {"claimName": claim}})
        if claim in inputs:
            mounts.append({"name": name, "mountPath": f"{INPUTS_DIR}/{claim}", "readOnly": True})
        if claim == store:
            mounts.append({"name": name, "mountPath": f"{STORE_DIR}/{claim}"})


def worker_pod(
    spec: BModelBuildSpec,
    *,
    step: str,
    args: list[str],
    image: str,
    config: WorkerConfig,
    node_selector: dict[str, str],
    resources: dict[str, dict[str, str]],
    with_inputs: bool,
) -> dict[str, Any]:
    """A pod that passes Pod Security `restricted`: non-root, no privilege escalation, no capabilities,
    RuntimeDefault seccomp, only emptyDir and PVC volumes, and no API token (the worker needs none)."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": node_selector,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "fsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": step,
                "image": image,
                "imagePullPolicy": config.image_pull_policy,
                "command": ["bmfleet", "worker", step],
                "args": args,
                "env": [{"name": "TMPDIR", "value": TMP_DIR}, {"name": "HOME", "value": WORK_DIR}],
                "resources": resources,
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
    _mount_claims(pod, spec, with_inputs)
    if spec.placement.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.placement.tolerations]
    if spec.placement.priority_class_name:
        pod["priorityClassName"] = spec.placement.priority_class_name
    return pod
