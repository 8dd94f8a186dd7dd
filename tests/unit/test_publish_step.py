"""The publish step's Job and the Published condition it leads to."""

from __future__ import annotations

import json

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.pods import WorkerConfig
from bmfleet.pipeline.publish import build_publish_job
from bmfleet.pipeline.status import publish_step_status
from bmfleet.pipeline.stepjob import Owner

SPEC = {
    "toolchain": {"name": "tpu-mlir", "image": "reg/w@sha256:" + "0" * 64},
    "model": {"format": "onnx", "uri": "pvc://models/m.onnx", "sha256": "a" * 64},
    "chip": "BM1684",
    "precision": "INT8",
    "shapes": [{"shape": "[1,3,32,32]"}],
    "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
    "publish": {"registry": {"uri": "oci://registry.example:5000/models/m", "tag": "v1", "credentialsSecret": "reg"}},
}
STATUS = {
    "conditions": [],
    "combine": {"uri": "pvc://artifacts/builds/blobs/sha256/" + "b" * 64, "digest": "sha256:" + "b" * 64, "size": 9},
    "gates": {"passed": True, "summary": "ok", "reportUri": "pvc://artifacts/builds/blobs/sha256/" + "c" * 64},
    "shapes": [{"shape": "[1,3,32,32]", "toolchain": "tpu-mlir 1.30.2"}],
}


def test_publish_job_pushes_with_the_secret_mounted_read_only() -> None:
    spec = BModelBuildSpec.model_validate(SPEC)
    job = build_publish_job(Owner("b", "ns", "uid", 1), spec, STATUS, WorkerConfig(), "img")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    args = dict(a.split("=", 1) for a in c["args"])
    assert args["--registry"] == "oci://registry.example:5000/models/m" and args["--tag"] == "v1"
    assert args["--bmodel"] == STATUS["combine"]["uri"] and args["--report"] == STATUS["gates"]["reportUri"]
    prov = json.loads(args["--provenance"])
    assert prov["toolchain"] == ["tpu-mlir 1.30.2"] and prov["gates"]["passed"] is True
    assert {"name": "registry", "secret": {"secretName": "reg", "defaultMode": 0o440}} in pod["volumes"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "registry")
    assert mount["readOnly"] is True and args["--credentials"].startswith(mount["mountPath"])
    assert "sophgo.com/tpu" not in c["resources"]["requests"] and pod["automountServiceAccountToken"] is False


def test_published_follows_the_push() -> None:
    pushed = publish_step_status(STATUS, {"state": "Succeeded", "uri": "oci://r/m@sha256:b", "manifest": "sha256:m"}, 1)
    cond = next(c for c in pushed["conditions"] if c["type"] == "Published")
    assert cond["status"] == "True" and "oci://r/m@sha256:b" in cond["message"]
    failed = publish_step_status(STATUS, {"state": "Failed", "reason": "RegistryUnavailable", "message": "refused"}, 1)
    cond = next(c for c in failed["conditions"] if c["type"] == "Published")
    assert (cond["status"], cond["reason"]) == ("False", "RegistryUnavailable")
