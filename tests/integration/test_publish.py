"""spec.publish end to end: a real (tiny, FP32) TPU-MLIR build on the sandbox combines into a PVC store, then
creates its BModelRollout, which resolves the build's artifact and assigns it to the first device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bmfleet.cli.devenv import OperatorProcess, create_store_claim
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.models import write_classifier
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from tests.integration.conftest import Builds
from tests.integration.test_rollouts import Devices

pytestmark = pytest.mark.toolchain


@pytest.fixture
def devices(api: client.ApiClient, namespace: str) -> Devices:
    return Devices(api, namespace)


def _build(model: Path) -> dict[str, Any]:
    return {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": "tiny-v1"},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{model}"},
            "chip": "BM1684",
            "precision": "FP32",
            "netName": "tiny",
            "shapes": [{"shape": "[1,3,32,32]"}],
            "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
            "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
            "publish": {"rollout": {"name": "tiny", "modelName": "det", "selector": {"matchLabels": {"fleet": "a"}}}},
        },
    }


@pytest.mark.timeout(900)
def test_ready_build_publishes_its_rollout(
    builds: Builds, devices: Devices, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    create_store_claim(sandbox, namespace, "artifacts", tmp_path / "store")
    for i in range(2):
        devices.create(f"se5-{i}", fleet="a")
    build = builds.create(_build(write_classifier(tmp_path / "tiny.onnx")))
    done = builds.wait_condition("tiny-v1", "Published", "True", timeout=600)
    combine = done["status"]["combine"]
    published = next(c for c in done["status"]["conditions"] if c["type"] == "Published")
    assert combine["digest"] in published["message"] and "BModelRollout tiny" in published["message"]

    rollout = devices.custom.get_namespaced_custom_object("bmfleet.io", "v1alpha1", namespace, "bmodelrollouts", "tiny")
    (owner,) = rollout["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("BModelBuild", build["metadata"]["uid"], True)
    assert rollout["spec"]["artifact"] == {"build": "tiny-v1"} and rollout["spec"]["modelName"] == "det"
    st = devices.wait("tiny", "the first cohort", lambda s: s.get("counts", {}).get("targeted") == 1, timeout=30)
    assert st["artifact"] == {k: combine[k] for k in ("digest", "uri", "size")} | {"chip": "BM1684"}
    (entry,) = devices.entries().values()
    assert (entry["digest"], entry["uri"], entry["size"]) == (combine["digest"], combine["uri"], combine["size"])
