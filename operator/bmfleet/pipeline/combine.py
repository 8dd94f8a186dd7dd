"""The combine step: once every stage has compiled into the store, one Job merges the per-shape bmodels into
one bmodel whose net has a stage per shape (largest batch first, as the runtime needs)."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.names import digest
from bmfleet.pipeline.pods import RESULT_PATH, WORK_DIR, WorkerConfig, store_args, worker_pod
from bmfleet.pipeline.stepjob import Owner, step_job

COMBINE_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}


def combine_inputs(stages: list[dict[str, Any]]) -> list[str]:
    """Store URIs of the compiled stages, largest batch first (ties keep spec order)."""
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
    owner: Owner, spec: BModelBuildSpec, inputs: list[str], config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The combine Job. Named by a hash of its inputs: the same compiled stages combine once."""
    args = [
        f"--inputs={','.join(inputs)}",
        *store_args(spec),
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
    return step_job(owner, "combine", pod, annotations, backoff_limit=1, deadline_seconds=1800)
