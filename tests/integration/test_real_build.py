"""A real build on the sandbox: an ONNX classifier made here, compiled INT8 by TPU-MLIR for BM1684 at batch 4
and batch 1 in Jobs whose pods the sandbox kubelet really runs, combined by the combine Job into one bmodel
with one net of two stages, in a PVC store. The combined file then runs on TPU-MLIR's simulator and matches
onnxruntime FP32 for both batch sizes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bmfleet.bmodel import read_model
from bmfleet.cli.devenv import OperatorProcess, create_store_claim, wait_for
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.models import write_calibration_dir, write_classifier, write_input_npz, write_unsupported
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from bmfleet.toolchains.tpu_mlir import find_bin_dir, tool_env
from tests.integration.conftest import Builds

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


def _steps(builds: Builds, name: str) -> list[str]:
    return sorted(j.metadata.labels["bmfleet.io/step"] for j in builds.jobs(name))


@pytest.mark.timeout(900)
def test_same_inputs_again_hit_the_cache(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    """A second build with the same input content (another name) runs only the resolve step, no compile or
    combine Job, and is Ready at once; changing a file behind the same URI misses the cache."""
    model = write_classifier(tmp_path / "tiny.onnx")
    calib = write_calibration_dir(tmp_path / "calib")
    create_store_claim(sandbox, namespace, "artifacts", tmp_path / "store")
    first = _build(model, calib, "BM1684")
    builds.create(first)
    done = builds.wait_condition(first["metadata"]["name"], "Combined", "True", timeout=600)
    assert not any(s.get("cacheHit") for s in done["status"]["shapes"])
    assert set(done["status"]["inputs"]["digests"]) == {"model", "calibration"}

    second = _build(model, calib, "BM1684")
    second["metadata"]["name"] = "again"
    t0 = time.monotonic()
    builds.create(second)
    again = builds.wait_condition("again", "Ready", "True", timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed
    assert _steps(builds, "again") == ["resolve"]
    assert again["status"]["inputs"]["digests"] == done["status"]["inputs"]["digests"]
    assert [s.get("cacheHit") for s in again["status"]["shapes"]] == [True, True]
    assert again["status"]["combine"]["cacheHit"] is True
    assert again["status"]["combine"]["digest"] == done["status"]["combine"]["digest"]
    assert [s["digest"] for s in again["status"]["shapes"]] == [s["digest"] for s in done["status"]["shapes"]]

    # Same URIs, different content: the resolve step sees it, so the cache misses and the stages compile.
    (calib / "extra.npz").write_bytes((calib / sorted(p.name for p in calib.iterdir())[0]).read_bytes() + b"\0")
    third = _build(model, calib, "BM1684")
    third["metadata"]["name"] = "changed"
    builds.create(third)
    wait_for(lambda: _steps(builds, "changed").count("compile") == 2, 60, "compile Jobs after a content change")
    changed = builds.get("changed")["status"]
    assert changed["inputs"]["digests"]["calibration"] != done["status"]["inputs"]["digests"]["calibration"]
    assert changed["inputs"]["digests"]["model"] == done["status"]["inputs"]["digests"]["model"]
    assert not any(s.get("cacheHit") for s in changed["shapes"])


@pytest.mark.timeout(600)
def test_model_the_toolchain_rejects_stalls_with_its_reason(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    model = write_unsupported(tmp_path / "bad.onnx")
    create_store_claim(sandbox, namespace, "artifacts", tmp_path / "store")
    body = _build(model, write_calibration_dir(tmp_path / "calib"), "BM1684")
    body["spec"]["shapes"] = [{"shape": "[1,3,32,32]"}]
    builds.create(body)
    done = builds.wait_condition(body["metadata"]["name"], "Stalled", "True", timeout=300)
    (stage,) = done["status"]["shapes"]
    assert stage["state"] == "Failed" and stage["reason"] == "UnsupportedOperator", stage
    stalled = next(c for c in done["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "CompileFailed" and "UnsupportedOperator" in stalled["message"]
