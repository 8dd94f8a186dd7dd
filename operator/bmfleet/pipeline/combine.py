"""The combine step: once every stage has compiled into the store, one Job merges the per-shape bmodels into
one bmodel whose net has a stage per shape (largest batch first, as the runtime needs)."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.common import API_VERSION
from bmfleet.pipeline.names import ANNOTATION_GENERATION, ANNOTATION_HASH, child_name, digest, standard_labels
from bmfleet.pipeline.pods import EXIT_BAD_INPUT, RESULT_PATH, WORK_DIR, WorkerConfig, worker_pod

COMBINE_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}


def combine_inputs(stages: list[dict[str, Any]]) -> list[str]:
    """Store keys of the compiled stages, largest batch first (ties keep spec order)."""
    ordered = sorted(stages, key=lambda s: (-s["inputs"][0][0], s["index"]))
    return [s["uri"] for s in ordered]


def output_name(spec: BModelBuildSpec) -> str:
    """File name of the combined bmodel: output.name, else <netName>.bmodel, else model.bmodel."""
    if spec.output is not None and spec.output.name:
        return spec.output.name
    return f"{spec.net_name or 'model'}.bmodel"


def combine_cache_key(namespace: str, spec: BModelBuildSpec, inputs: list[str]) -> str:
    """Same namespace, store, inputs (in order) and output name: the same combined bmodel."""
    store = spec.output.store.uri if spec.output and spec.output.store else ""
    return digest({"ns": namespace, "store": store, "inputs": inputs, "name": output_name(spec)}, 32)


def build_combine_job(
    owner_name: str,
    namespace: str,
    owner_uid: str,
    generation: int,
    spec: BModelBuildSpec,
    inputs: list[str],
    config: WorkerConfig,
    image: str,
) -> dict[str, Any]:
    """The combine Job. Named by a hash of its inputs: the same compiled stages combine once."""
    store = spec.output.store.uri if spec.output and spec.output.store else ""
    args = [
        f"--inputs={','.join(inputs)}",
        f"--store={store}",
        f"--name={output_name(spec)}",
        f"--outdir={WORK_DIR}/out",
        f"--result={RESULT_PATH}",
    ]
    # Pure Python, no TPU: it may run on any node that can mount the store.
    pod = worker_pod(
        spec,
        step="combine",
        args=args,
        image=image,
        config=config,
        node_selector={},
        resources=COMBINE_RESOURCES,
        with_inputs=False,
    )
    annotations = dict(spec.placement.pod_annotations or {})
    spec_hash = digest({"pod": pod, "annotations": annotations})
    labels = standard_labels(owner_name, "combine")
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_name(owner_name, "combine", spec_hash),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_GENERATION: str(generation), ANNOTATION_HASH: spec_hash},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "BModelBuild",
                    "name": owner_name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": 1800,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "combine", "operator": "In", "values": [EXIT_BAD_INPUT]},
                    }
                ]
            },
            "template": {"metadata": template_meta, "spec": pod},
        },
    }
