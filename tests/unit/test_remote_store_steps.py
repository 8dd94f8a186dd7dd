"""Builds whose output store is an OCI registry or S3: every step that uses the store gets `--store` and its
credentials Secret (read-only, group-readable only); the resolve step gets neither; the cache key names the
store; validation refuses URIs the backend cannot take and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.combine import build_combine_job
from bmfleet.pipeline.gate import build_gate_job
from bmfleet.pipeline.jobs import build_compile_job, compile_cache_key
from bmfleet.pipeline.pods import STORE_SECRET_DIR, WorkerConfig
from bmfleet.pipeline.publish import build_publish_job
from bmfleet.pipeline.resolve import build_resolve_job
from bmfleet.pipeline.stepjob import Owner
from bmfleet.pipeline.validate import unsupported_fields
from bmfleet.worker import compile as compile_worker
from bmfleet.worker import gate as gate_worker

OWNER = Owner("b", "ns", "uid", 1)
STORE = "oci://registry.example:5000/bmfleet/blobs"
BLOB = f"{STORE}@sha256:{'b' * 64}"
SPEC: dict[str, Any] = {
    "toolchain": {"name": "tpu-mlir", "image": "reg/w@sha256:" + "0" * 64},
    "model": {"format": "onnx", "uri": "pvc://models/m.onnx"},
    "chip": "BM1684",
    "precision": "INT8",
    "shapes": [{"shape": "[1,3,32,32]"}],
    "calibration": {"datasetUri": "pvc://models/calib"},
    "gates": {"similarity": {}},
    "output": {"store": {"type": "oci", "uri": STORE, "credentialsSecret": "store-creds"}},
    "publish": {"registry": {"uri": "oci://registry.example:5000/models/m"}},
}
STATUS = {"conditions": [], "combine": {"uri": BLOB, "digest": "sha256:" + "b" * 64}, "gates": {"resultUri": BLOB}}


def _spec(**store: Any) -> BModelBuildSpec:
    raw = copy.deepcopy(SPEC)
    raw["output"]["store"] = store or raw["output"]["store"]
    return BModelBuildSpec.model_validate(raw)


def _jobs(spec: BModelBuildSpec) -> dict[str, dict[str, Any]]:
    shapes = spec.shapes[0].resolved()
    return {
        "resolve": build_resolve_job(OWNER, spec, WorkerConfig(), "img"),
        "compile": build_compile_job(OWNER, spec, 0, shapes, WorkerConfig(), "img"),
        "combine": build_combine_job(OWNER, spec, [BLOB], WorkerConfig(), "img"),
        "gate": build_gate_job(OWNER, spec, BLOB, WorkerConfig(), "img"),
        "publish": build_publish_job(OWNER, spec, STATUS, WorkerConfig(), "img"),
    }


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def test_every_step_that_uses_the_store_mounts_its_secret_read_only() -> None:
    for step, job in _jobs(_spec()).items():
        pod = _pod(job)
        (c,) = pod["containers"]
        secrets = [v for v in pod["volumes"] if "secret" in v and v["secret"]["secretName"] == "store-creds"]
        mounts = [m for m in c["volumeMounts"] if m["mountPath"] == STORE_SECRET_DIR]
        args = dict(a.split("=", 1) for a in c["args"] if "=" in a)
        # Pod Security `restricted` allows secret volumes; the worker stays non-root without privilege.
        assert all(set(v) <= {"name", "emptyDir", "persistentVolumeClaim", "secret"} for v in pod["volumes"])
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        if step == "resolve":
            assert not secrets and not mounts and "--store" not in args, step
            continue
        assert secrets == [{"name": "store-credentials", "secret": {"secretName": "store-creds", "defaultMode": 0o440}}]
        assert mounts == [{"name": "store-credentials", "mountPath": STORE_SECRET_DIR, "readOnly": True}], step
        assert args["--store"] == STORE and args["--store-credentials"] == STORE_SECRET_DIR, step
        # No claim is mounted for a remote store (only the input claim "models" where inputs are read).
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims <= {"models"}, step


def test_a_store_without_credentials_mounts_no_secret_and_the_workers_parse_the_args() -> None:
    spec = _spec(type="s3", uri="s3://bmfleet-artifacts/builds?endpoint=https://s3.example")
    jobs = _jobs(spec)
    for job in jobs.values():
        assert not [v for v in _pod(job)["volumes"] if "secret" in v]
    compile_req = compile_worker.parse(_pod(jobs["compile"])["containers"][0]["args"])
    assert compile_req.store == "s3://bmfleet-artifacts/builds?endpoint=https://s3.example"
    assert compile_req.store_credentials is None
    gate_args = gate_worker.parser().parse_args(_pod(jobs["gate"])["containers"][0]["args"])
    assert gate_args.store == compile_req.store and gate_args.bmodel == BLOB


def test_cache_key_names_the_store() -> None:
    pinned = copy.deepcopy(SPEC)
    pinned["model"]["sha256"] = pinned["calibration"]["sha256"] = "c" * 64
    keys = set()
    for uri in (STORE, "oci://registry.example:5000/bmfleet/other", "s3://bucket-a/builds"):
        pinned["output"]["store"] = {"type": uri.partition(":")[0], "uri": uri}
        spec = BModelBuildSpec.model_validate(pinned)
        key = compile_cache_key("ns", spec, spec.shapes[0].resolved(), "img")
        assert key is not None
        keys.add(key)
    assert len(keys) == 3


def test_oci_and_s3_stores_are_accepted() -> None:
    for store in (
        {"type": "oci", "uri": STORE, "credentialsSecret": "c"},
        {"type": "s3", "uri": "s3://bmfleet-artifacts/builds?endpoint=http://127.0.0.1:9000&region=eu-1"},
    ):
        assert [p for p in unsupported_fields(_spec(**store)) if p.field.startswith("spec.output")] == []


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ({"type": "oci", "uri": "oci://registry.example/Upper/Case"}, "lower-case repository"),
        ({"type": "oci", "uri": "oci://registry.example"}, "lower-case repository"),
        ({"type": "s3", "uri": "s3://B/prefix"}, "invalid bucket name"),
        ({"type": "s3", "uri": "s3://bucket-a/p?endpoint=http://s3.example"}, "must be https"),
        ({"type": "pvc", "uri": "pvc:///nothing"}, "pvc://<claim>/<prefix>"),
    ],
)
def test_bad_store_uris_stall_with_the_reason(store: dict[str, str], says: str) -> None:
    (problem,) = [p for p in unsupported_fields(_spec(**store)) if p.field.startswith("spec.output")]
    assert problem.field == "spec.output.store.uri" and says in problem.message and problem.reason == "InvalidSpec"
