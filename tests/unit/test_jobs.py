"""The compile Job builder: one pure function, checked field by field."""

import copy

import pytest

from bmfleet.api.build import BModelBuildSpec
from bmfleet.pipeline.jobs import Owner, WorkerConfig, build_compile_job, compile_args
from bmfleet.pipeline.names import MAX_NAME, child_name
from bmfleet.worker.compile import parse

OWNER = Owner(name="ssd300", namespace="ns", uid="uid-1", generation=3)
IMAGE = "registry.local/bmfleet@sha256:" + "a" * 64
CONFIG = WorkerConfig(images={"bmnetu": IMAGE})


def _job(raw_spec, stage=0):
    spec = BModelBuildSpec.model_validate(raw_spec)
    shapes = spec.shapes[stage].resolved()
    return spec, build_compile_job(OWNER, spec, stage, shapes, CONFIG, IMAGE)


def test_job_identity_labels_and_owner(sample_build):
    _, job = _job(sample_build["spec"])
    meta = job["metadata"]
    assert meta["name"].startswith("ssd300-compile-") and len(meta["name"]) <= MAX_NAME
    assert meta["namespace"] == "ns"
    assert meta["labels"]["bmfleet.io/build"] == "ssd300"
    assert meta["labels"]["bmfleet.io/stage"] == "0"
    assert meta["labels"]["app.kubernetes.io/component"] == "compile"
    assert meta["annotations"]["bmfleet.io/shape"] == "[4,3,300,300]"
    assert meta["annotations"]["bmfleet.io/generation"] == "3"
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "name": "ssd300",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job["spec"]["template"]["metadata"]["labels"]["bmfleet.io/build"] == "ssd300"


def test_placement_resources_and_restricted_security(sample_build):
    _, job = _job(sample_build["spec"])
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"sophgo.com/chip": "bm1684"}
    (c,) = pod["containers"]
    assert c["resources"]["requests"]["sophgo.com/tpu"] == c["resources"]["limits"]["sophgo.com/tpu"] == "1"
    assert c["resources"]["requests"]["cpu"] == "1"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert all(set(v) <= {"name", "emptyDir", "persistentVolumeClaim"} for v in pod["volumes"])
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert c["image"] == IMAGE
    assert c["command"] == ["bmfleet", "worker", "compile"]


def test_tpu_count_configurable_and_zero_drops_the_resource(sample_build):
    raw = copy.deepcopy(sample_build["spec"])
    raw["placement"] = {
        "tpu": 2,
        "nodeSelector": {"pool": "fast"},
        "tolerations": [{"key": "sophgo.com/tpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    _, job = _job(raw)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["sophgo.com/tpu"] == "2"
    assert pod["nodeSelector"] == {"pool": "fast", "sophgo.com/chip": "bm1684"}
    assert pod["tolerations"] == [{"key": "sophgo.com/tpu", "operator": "Exists", "effect": "NoSchedule"}]
    raw["placement"]["tpu"] = 0
    _, job = _job(raw)
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "sophgo.com/tpu" not in res["requests"] and "sophgo.com/tpu" not in res["limits"]


def test_arguments_fully_describe_the_stage(sample_build):
    spec, job = _job(sample_build["spec"], stage=1)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    req = parse(args)
    assert req.shapes == [[1, 3, 300, 300]]
    assert (req.toolchain, req.model_format, req.chip, req.precision) == ("bmnetu", "umodel", "BM1684", "INT8")
    assert req.model == spec.model.uri and req.weights == spec.model.weights_uri
    assert (req.opt, req.dyn, req.cmp, req.mode, req.max_n, req.net_name) == (2, False, True, "compile", 4, "ssd300")


def test_tpu_mlir_options_reach_the_worker():
    raw = {
        "toolchain": {"name": "tpu-mlir"},
        "model": {"format": "onnx", "uri": "https://m.example/r.onnx"},
        "chip": "BM1684X",
        "precision": "INT8",
        "shapes": [{"inputs": [[1, 3, 224, 224]]}],
        "calibration": {"datasetUri": "pvc://data/calib", "samples": 32},
        "preprocess": {"mean": [0.0, 1.5, 2.0], "scale": [0.5, 0.5, 0.5], "pixelFormat": "rgb"},
    }
    spec = BModelBuildSpec.model_validate(raw)
    req = parse(compile_args(spec, [[1, 3, 224, 224]]))
    assert (req.calibration_dataset, req.calibration_samples) == ("pvc://data/calib", 32)
    assert req.mean == [0.0, 1.5, 2.0] and req.scale == [0.5, 0.5, 0.5] and req.pixel_format == "rgb"
    job = build_compile_job(OWNER, spec, 0, [[1, 3, 224, 224]], CONFIG, IMAGE)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "claim-0", "persistentVolumeClaim": {"claimName": "data"}} in pod["volumes"]
    assert {"name": "claim-0", "mountPath": "/run/bmfleet/inputs/data", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]
    assert pod["nodeSelector"] == {"sophgo.com/chip": "bm1684x"}


def test_name_is_deterministic_and_changes_with_the_stage_content(sample_build):
    _, a = _job(sample_build["spec"])
    _, b = _job(copy.deepcopy(sample_build["spec"]))
    assert a == b
    raw = copy.deepcopy(sample_build["spec"])
    raw["compile"]["opt"] = 1
    _, c = _job(raw)
    assert c["metadata"]["name"] != a["metadata"]["name"]
    _, other_stage = _job(sample_build["spec"], stage=1)
    assert other_stage["metadata"]["name"] != a["metadata"]["name"]


@pytest.mark.parametrize("parent", ["a", "x" * 63, "build.with.dots-" + "y" * 60])
def test_child_names_fit_63_characters(parent):
    name = child_name(parent, "compile", "0123456789")
    assert len(name) <= MAX_NAME
    assert name.endswith("-compile-0123456789")
    assert child_name(parent, "compile", "0123456789") == name
