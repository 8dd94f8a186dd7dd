"""`bmfleet build --local`: the same worker commands as the Jobs, as local processes, stages in parallel,
then the combine; a rerun is served from the local store's compile cache."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from bmfleet.bmodel import read_model
from bmfleet.cli.local import run_local
from bmfleet.sandbox.models import write_calibration_dir, write_classifier


def _manifest(tmp_path: Path) -> Path:
    model = write_classifier(tmp_path / "tiny.onnx")
    calib = write_calibration_dir(tmp_path / "calib")
    doc = {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": "tiny"},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{model}"},
            "chip": "BM1684",
            "precision": "INT8",
            "netName": "tiny",
            "shapes": [{"shape": "[1,3,32,32]"}, {"shape": "[4,3,32,32]"}],
            "calibration": {"datasetUri": f"file://{calib}", "samples": 8},
        },
    }
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_local_build_combines_and_reruns_from_cache(tpu_mlir_bin: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BMFLEET_TPU_MLIR_BIN", str(tpu_mlir_bin))
    manifest, store = _manifest(tmp_path), tmp_path / "store"
    out = io.StringIO()
    assert run_local(manifest, store, 2, out) == 0, out.getvalue()
    combined = store / "work" / "tiny" / "combined" / "tiny.bmodel"
    (net,) = read_model(combined).nets
    assert [s.inputs[0].shape[0] for s in net.stages] == [4, 1]  # largest batch first
    assert "Succeeded" in out.getvalue()

    again = io.StringIO()
    assert run_local(manifest, store, 2, again) == 0, again.getvalue()
    assert again.getvalue().count("Cached") >= 2 and "Running" not in again.getvalue().split("combine")[0]
