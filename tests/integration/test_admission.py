"""What the API server refuses at admission (schema + CEL), with a message that names the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bmfleet.cli.devenv import kubectl
from tests.integration.conftest import Builds, sample

TPU_MLIR = {"toolchain": {"name": "tpu-mlir"}, "model": {"format": "onnx", "uri": "https://m.example/net.onnx"}}


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sample's spec with one dotted path set (value None deletes it)."""
    spec = copy.deepcopy(base if base is not None else sample()["spec"])
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


def _tpu_mlir(**overrides: Any) -> dict[str, Any]:
    spec = copy.deepcopy(sample()["spec"])
    spec.update(copy.deepcopy(TPU_MLIR))
    spec["precision"] = "FP32"
    spec.update(overrides)
    return spec


INVALID = {
    "unknown chip": (_with("chip", "BM1688"), "spec.chip", "Unsupported value"),
    "opt 3": (_with("compile.opt", 3), "spec.compile.opt", "less than or equal to 2"),
    "zero dimension": (_with("shapes", [{"inputs": [[1, 3, 0, 300]]}]), "spec.shapes[0].inputs[0][2]", "1"),
    "negative dimension": (_with("shapes", [{"inputs": [[-4, 3, 300, 300]]}]), "spec.shapes[0].inputs[0][0]", "1"),
    "missing model uri": (_with("model.uri", None), "spec.model.uri", "Required value"),
    "FP16 with bmnetu": (_with("precision", "FP16"), "spec.precision", "bmnetu supports precision FP32 or INT8"),
    "malformed shape string": (_with("shapes", [{"shape": "[1,3,300,300"}]), "spec.shapes[0].shape", "should match"),
    "zero in shape string": (_with("shapes", [{"shape": "[0,3,300,300]"}]), "spec.shapes[0].shape", "should match"),
    "both shape forms": (
        _with("shapes", [{"shape": "[1,3,300,300]", "inputs": [[1, 3, 300, 300]]}]),
        "spec.shapes[0]",
        "exactly one of inputs",
    ),
    "no shapes": (_with("shapes", []), "spec.shapes", "at least 1 items"),
    "bmnetu with onnx": (_with("model.format", "onnx"), "spec.model.format", "bmnetu compiles UFW umodels only"),
    "bmnetu for BM1684X": (_with("chip", "BM1684X"), "spec.chip", "bmnetu targets BM1684 only"),
    "INT8 tpu-mlir without calibration": (_tpu_mlir(precision="INT8"), "spec.calibration", "needs calibration"),
    "FP16 on BM1684": (_tpu_mlir(precision="FP16"), "spec.precision", "BM1684 has no FP16"),
    "tpu-mlir with umodel": (_with("toolchain.name", "tpu-mlir"), "spec.model.format", "tpu-mlir cannot read"),
    "umodel without weights": (_with("model.weightsUri", None), "spec.model.weightsUri", "need weightsUri"),
    "ftp uri": (_with("model.uri", "ftp://host/net.prototxt"), "spec.model.uri", "should match"),
    "image not pinned": (
        _with("toolchain.image", "registry.local/bmnetu:latest"),
        "spec.toolchain.image",
        "should match",
    ),
    "batch above maxN": (
        _with("compile.maxN", 2, _with("shapes", [{"inputs": [[4, 3, 300, 300]]}])),
        "spec.compile.maxN",
        "exceeds compile.maxN",
    ),
    "chip selector disagrees": (
        _with("placement.nodeSelector", {"sophgo.com/chip": "bm1684x"}),
        "spec.placement.nodeSelector",
        "must match chip",
    ),
    "negative tpu": (_with("placement.tpu", -1), "spec.placement.tpu", "greater than or equal to 0"),
    "GenUmodel with tpu-mlir": (_tpu_mlir(compile={"mode": "GenUmodel"}), "spec.compile.mode", "only for bmnetu"),
    "bad quantity": (
        _with("placement.resources", {"requests": {"cpu": "lots"}}),
        "spec.placement.resources.requests.cpu",
        "should match",
    ),
    "unknown precision": (_with("precision", "INT4"), "spec.precision", "Unsupported value"),
    "oci store with a pvc uri": (
        _with("output.store", {"type": "oci", "uri": "pvc://artifacts/builds"}),
        "spec.output.store.uri",
        "a store of type oci needs oci://",
    ),
    "s3 store with an oci uri": (
        _with("output.store", {"type": "s3", "uri": "oci://registry.example/b"}),
        "spec.output.store.uri",
        "a store of type s3 needs s3://",
    ),
    "pvc store with credentials": (
        _with("output.store", {"type": "pvc", "uri": "pvc://artifacts/b", "credentialsSecret": "c"}),
        "spec.output.store.credentialsSecret",
        "a pvc store takes no credentials",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_build_is_refused_naming_the_field(builds: Builds, case: str) -> None:
    spec, field, text = INVALID[case]
    body = {"apiVersion": "bmfleet.io/v1alpha1", "kind": "BModelBuild", "metadata": {"name": "bad"}, "spec": spec}
    with pytest.raises(ApiException) as err:
        builds.create(body)
    assert err.value.status == 422, err.value.body
    message = json.loads(err.value.body)["message"]
    assert field in message, message
    assert text in message, message


def test_minimal_build_gets_schema_defaults(builds: Builds) -> None:
    body = {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": "minimal"},
        "spec": {
            "model": {"format": "onnx", "uri": "https://m.example/net.onnx"},
            "shapes": [{"shape": "[1,3,224,224]"}],
        },
    }
    spec = builds.create(body)["spec"]
    assert spec["toolchain"]["name"] == "tpu-mlir"
    assert spec["chip"] == "BM1684" and spec["precision"] == "FP32"
    assert spec["compile"] == {
        "opt": 2,
        "dyn": False,
        "cmp": True,
        "mode": "compile",
        "mergeWeights": False,
        "keepOutputs": False,
        "timeoutSeconds": 3600,
        "retries": 1,
    }
    assert spec["placement"]["tpu"] == 1
    assert spec["placement"]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}


def test_unknown_fields_are_refused_by_strict_field_validation(sandbox: Any, namespace: str) -> None:
    manifest = json.dumps(sample("typo") | {"spec": {**sample()["spec"], "shapez": []}})
    out = kubectl(sandbox, "apply", "-n", namespace, "--validate=strict", "-f", "-", stdin=manifest, check=False)
    assert 'unknown field "spec.shapez"' in out


def test_kubectl_explain_describes_fields(sandbox: Any) -> None:
    out = kubectl(sandbox, "explain", "bmb.spec.compile.opt")
    assert "Optimisation level 0, 1 or 2 (bmnetu -opt)." in out
    out = kubectl(sandbox, "explain", "bmodelbuild.spec.shapes")
    assert "bmnetu -shapes" in out
