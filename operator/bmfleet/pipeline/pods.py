"""The worker pod every Job runs: one container of the bmfleet image, Pod Security `restricted`, volumes only
under POD_ROOT, and the result record where the kubelet reports the termination message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bmfleet.api.build import BModelBuildSpec, StoreRef
from bmfleet.pipeline.validate import referenced_claims

TPU_RESOURCE = "sophgo.com/tpu"
CHIP_LABEL = "sophgo.com/chip"
# Everything the worker reads or writes lives in volumes under one directory (the root filesystem is read-only).
POD_ROOT = "/run/bmfleet"
WORK_DIR = f"{POD_ROOT}/work"
TMP_DIR = f"{WORK_DIR}/tmp"  # noqa: S108  (inside the pod's own emptyDir, not the host's /tmp)
INPUTS_DIR = f"{POD_ROOT}/inputs"  # pvc://<claim>/<path> inputs: the claim is mounted read-only here
STORE_DIR = f"{POD_ROOT}/store"  # a pvc:// store: its claim is mounted read-write here
STORE_SECRET_DIR = f"{POD_ROOT}/secrets/store"  # spec.output.store.credentialsSecret, read-only
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


def output_store(spec: BModelBuildSpec) -> StoreRef | None:
    """The build's artifact store (a build with one is also combined, cached and may be gated)."""
    return spec.output.store if spec.output else None


def store_claim(spec: BModelBuildSpec) -> str | None:
    """The claim of a pvc:// output store, if the build has one."""
    store = output_store(spec)
    if store is None or store.type != "pvc":
        return None
    return store.uri.removeprefix("pvc://").split("/", 1)[0]


def store_args(spec: BModelBuildSpec) -> list[str]:
    """`--store` (and `--store-credentials` where the Secret is mounted) for a step that uses the store."""
    store = output_store(spec)
    if store is None:
        return []
    return [f"--store={store.uri}", *([f"--store-credentials={STORE_SECRET_DIR}"] if store.credentials_secret else [])]


def _mount_store_secret(pod: dict[str, Any], spec: BModelBuildSpec) -> None:
    """The store's credentials Secret, read-only and readable by the worker's group only."""
    store = output_store(spec)
    if store is None or not store.credentials_secret:
        return
    secret = {"secretName": store.credentials_secret, "defaultMode": 0o440}
    pod["volumes"].append({"name": "store-credentials", "secret": secret})
    mount = {"name": "store-credentials", "mountPath": STORE_SECRET_DIR, "readOnly": True}
    pod["containers"][0]["volumeMounts"].append(mount)


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
    with_store_secret: bool = True,
) -> dict[str, Any]:
    """A pod that passes Pod Security `restricted`: non-root, no privilege escalation, no capabilities,
    RuntimeDefault seccomp, only emptyDir, PVC and Secret volumes, and no API token (the worker needs none).
    `with_store_secret`: mount the store's credentials (steps that never open the store go without)."""
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
    if with_store_secret:
        _mount_store_secret(pod, spec)
    if spec.placement.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.placement.tolerations]
    if spec.placement.priority_class_name:
        pod["priorityClassName"] = spec.placement.priority_class_name
    return pod
