"""The publish step: once a build is Ready, one Job pushes the combined bmodel, its gate report and result, and
a provenance record (input digests, toolchain, options, gate verdict) to an OCI registry as one artifact."""

from __future__ import annotations

import json
from typing import Any

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.pods import POD_ROOT, RESULT_PATH, WORK_DIR, WorkerConfig, store_args, worker_pod
from bmfleet.pipeline.stepjob import Owner, step_job

PUBLISH_RESOURCES = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
SECRET_DIR = f"{POD_ROOT}/secrets/registry"


def provenance(spec: BModelBuildSpec, status: dict[str, Any]) -> dict[str, Any]:
    """What a device owner needs to trust the artifact: what went in, what compiled it, what the gates said."""
    gates = status.get("gates") or {}
    return {
        "inputs": (status.get("inputs") or {}).get("digests")
        or {"model": spec.model.sha256, "calibration": spec.calibration.sha256 if spec.calibration else None},
        "sources": {"model": spec.model.uri, "calibration": spec.calibration.dataset_uri if spec.calibration else None},
        "toolchain": sorted({s.get("toolchain") for s in status.get("shapes") or [] if s.get("toolchain")}),
        "chip": spec.chip,
        "precision": spec.precision,
        "stages": [s.get("shape") for s in status.get("shapes") or []],
        "compile": spec.compile.model_dump(mode="json", by_alias=True, exclude_none=True),
        "combined": {k: (status.get("combine") or {}).get(k) for k in ("digest", "size", "stages")},
        "gates": {k: gates.get(k) for k in ("passed", "summary", "checks")} if gates else None,
    }


def publish_args(spec: BModelBuildSpec, status: dict[str, Any], result: str = RESULT_PATH) -> list[str]:
    """`bmfleet worker publish` arguments."""
    assert spec.publish is not None and spec.publish.registry is not None
    reg = spec.publish.registry
    combine, gates = status.get("combine") or {}, status.get("gates") or {}
    args = [
        f"--registry={reg.uri}",
        f"--bmodel={combine.get('uri')}",
        *store_args(spec),
        f"--provenance={json.dumps(provenance(spec, status), sort_keys=True, separators=(',', ':'))}",
        f"--outdir={WORK_DIR}/out",
        f"--result={result}",
    ]
    optional = (("report", gates.get("reportUri")), ("gate-result", gates.get("resultUri")), ("tag", reg.tag))
    args += [f"--{flag}={v}" for flag, v in optional if v]
    if reg.credentials_secret:
        args.append(f"--credentials={SECRET_DIR}/.dockerconfigjson")
    return args


def build_publish_job(
    owner: Owner, spec: BModelBuildSpec, status: dict[str, Any], config: WorkerConfig, image: str
) -> dict[str, Any]:
    """The publish Job (no TPU; it mounts the store, its credentials and, when given, the registry's Secret)."""
    assert spec.publish is not None and spec.publish.registry is not None
    pod = worker_pod(
        spec,
        step="publish",
        args=publish_args(spec, status),
        image=image,
        config=config,
        node_selector={},
        resources=PUBLISH_RESOURCES,
        with_inputs=False,
    )
    secret = spec.publish.registry.credentials_secret
    if secret:
        pod["volumes"].append({"name": "registry", "secret": {"secretName": secret, "defaultMode": 0o440}})
        pod["containers"][0]["volumeMounts"].append({"name": "registry", "mountPath": SECRET_DIR, "readOnly": True})
    annotations = dict(spec.placement.pod_annotations or {})
    return step_job(owner, "publish", pod, annotations, backoff_limit=3, deadline_seconds=3600)
