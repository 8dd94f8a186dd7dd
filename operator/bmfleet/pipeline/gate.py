"""The gate step: after combine, one Job runs the precision gates of spec.gates on the combined bmodel
(on a node of the build's chip, where the device runtime is) and reports the verdict."""

from __future__ import annotations

import json
from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.jobs import node_selector, tpu_resources
from bmfleet.pipeline.pods import RESULT_PATH, WORK_DIR, WorkerConfig, store_args, worker_pod
from bmfleet.pipeline.stepjob import Owner, step_job


def gate_args(
    spec: BModelBuildSpec,
    combined_uri: str,
    result: str = RESULT_PATH,
    store: str | None = None,
    outdir: str = f"{WORK_DIR}/out",
) -> list[str]:
    """`bmfleet worker gate` arguments (`store` defaults to the build's store; `bmfleet build --local` passes
    its own paths)."""
    assert spec.gates is not None
    gates = spec.gates.model_dump(by_alias=True, exclude_none=True, mode="json")
    args = [
        f"--bmodel={combined_uri}",
        f"--model={spec.model.uri}",
        f"--gates={json.dumps(gates, sort_keys=True, separators=(',', ':'))}",
        *([f"--store={store}"] if store else store_args(spec)),
        f"--outdir={outdir}",
        f"--result={result}",
    ]
    if spec.model.sha256:
        args.append(f"--model-sha256={spec.model.sha256}")
    if spec.calibration is not None and spec.gates.similarity is not None:
        args.append(f"--calibration={spec.calibration.dataset_uri}")
    return args


def build_gate_job(
    owner: Owner, spec: BModelBuildSpec, combined_uri: str, config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The gate Job; named by a hash of its pod, so the same combined model and gate spec gate once."""
    assert spec.gates is not None
    pod = worker_pod(
        spec,
        step="gate",
        args=gate_args(spec, combined_uri),
        image=image,
        config=config,
        node_selector=node_selector(spec),
        resources=tpu_resources(spec),
        with_inputs=True,
    )
    annotations = dict(spec.placement.pod_annotations or {})
    return step_job(owner, "gate", pod, annotations, backoff_limit=1, deadline_seconds=spec.gates.timeout_seconds)
