"""A real build on the sandbox: an ONNX classifier made here, compiled INT8 by TPU-MLIR for BM1684 at batch 4
and batch 1 in Jobs whose pods the sandbox kubelet really runs, combined by the combine Job into one bmodel
with one net of two stages, in a PVC store. The combined file then runs on TPU-MLIR's simulator and matches
onnxruntime FP32 for both batch sizes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bmfleet.bmodel import read_model
from bmfleet.cli.devenv import OperatorProcess, create_store_claim
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from bmfleet.toolchains.tpu_mlir import find_bin_dir, tool_env
from tests.integration.conftest import Builds
from tests.models.onnx_models import write_calibration_dir, write_classifier, write_input_npz

pytestmark = pytest.mark.toolchain


def _build(model: Path, calib: Path, chip: str) -> dict[str, Any]:
    return {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": f"tiny-{chip.lower()}"},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{model}"},
            "chip": chip,
            "precision": "INT8",
            "netName": "tiny",
            "shapes": [{"shape": "[1,3,32,32]"}, {"inputs": [[4, 3, 32, 32]]}],
            "calibration": {"datasetUri": f"file://{calib}", "samples": 8},
            "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
            "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
        },
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("chip", ["BM1684", "BM1684X"])
def test_real_two_shape_build_combines_and_matches_fp32(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path, chip: str
) -> None:
    bin_dir = find_bin_dir()
    model = write_classifier(tmp_path / "tiny.onnx")
    calib = write_calibration_dir(tmp_path / "calib")
    store = tmp_path / "store"
    create_store_claim(sandbox, namespace, "artifacts", store)
    name = f"tiny-{chip.lower()}"
    builds.create(_build(model, calib, chip))
    done = builds.wait_condition(name, "Combined", "True", timeout=600)

    st = done["status"]
    assert st["phase"] == "Combined" and [s["state"] for s in st["shapes"]] == ["Succeeded", "Succeeded"]
    assert all(s["digest"].startswith("sha256:") and s["toolchain"] == "tpu-mlir 1.30.2" for s in st["shapes"])
    combined = store / "builds" / st["combine"]["uri"].removeprefix("pvc://artifacts/builds/")
    assert st["combine"]["stages"] == 2 and st["combine"]["size"] == combined.stat().st_size
    (net,) = read_model(combined).nets
    runnable = tmp_path / "combined.bmodel"  # model_runner picks its runtime by the file extension
    runnable.write_bytes(combined.read_bytes())
    assert net.name == "tiny" and len(net.stages) == 2

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for batch in (4, 1):
        data = write_input_npz(tmp_path / f"in_b{batch}.npz", batch)
        out = tmp_path / f"out_b{batch}.npz"
        subprocess.run(
            [str(bin_dir / "model_runner"), "--input", str(tmp_path / f"in_b{batch}.npz"), "--model",
             str(runnable), "--output", str(out)],
            cwd=tmp_path, check=True, capture_output=True, timeout=300, env=tool_env(bin_dir),
        )  # fmt: skip
        with np.load(out) as got:
            (got_name,) = got.files
            (want,) = session.run(None, {"input": data})
            assert got[got_name].shape == want.shape
            assert _cosine(got[got_name], want) >= 0.99
