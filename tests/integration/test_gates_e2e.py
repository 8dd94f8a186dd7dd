"""Precision gates on the sandbox with real compiled models: a classifier trained here (synthetic but learnable
images) passes its gate and the same model calibrated on constant inputs fails it with the numbers in status; a
small trained detector goes through the detection gate; bad gate inputs end Stalled with the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bmfleet.cli.devenv import OperatorProcess, create_store_claim
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from bmfleet.sandbox.trained import TrainedModel, write_constant_calibration
from tests.helpers import kstatus
from tests.helpers.argocd import health
from tests.integration.conftest import ARTIFACTS, Builds, scrape

pytestmark = pytest.mark.toolchain


def _build(name: str, m: TrainedModel, calibration: Path, gates: dict[str, Any], shapes: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": name},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{m.onnx}"},
            "chip": "BM1684",
            "precision": "INT8",
            "netName": name.split("-", maxsplit=1)[0],
            "shapes": [{"shape": s} for s in shapes],
            "calibration": {"datasetUri": f"file://{calibration}", "samples": 32},
            "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
            "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
            "gates": gates,
        },
    }


def _classification(m: TrainedModel, **extra: Any) -> dict[str, Any]:
    pre = {"mean": m.preprocess["mean"], "scale": m.preprocess["scale"]}
    return {"classification": {"datasetUri": f"file://{m.test_dir}", "preprocess": pre, "topk": [1, 5], **extra}}


def _checks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checks by metric; also kept in test-artifacts/ so a run's figures can be read afterwards."""
    ARTIFACTS.mkdir(exist_ok=True)
    name = status["gates"].get("job") or "gate"
    (ARTIFACTS / f"gates-{name}.json").write_text(json.dumps(status["gates"], indent=1))
    return {c["metric"]: c for c in status["gates"]["checks"]}


def _stored(store: Path, uri: str) -> Path:
    return store / "builds" / uri.removeprefix("pvc://artifacts/builds/")


@pytest.mark.timeout(1500)
def test_classifier_gate_passes_and_bad_calibration_fails_it(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path,
    classifier: TrainedModel,
) -> None:  # fmt: skip
    store = tmp_path / "store"
    create_store_claim(sandbox, namespace, "artifacts", store)
    gates = {
        **_classification(classifier),
        "similarity": {"samples": 8, "minCosine": 0.95, "minEuclideanSimilarity": 0.5},
    }
    builds.create(_build("cls-good", classifier, classifier.calibration_dir, gates, ["[4,3,32,32]", "[1,3,32,32]"]))
    good = builds.wait_condition("cls-good", "GatesPassed", "True", timeout=900)
    st = good["status"]
    assert st["phase"] == "Verified"
    assert health("BModelBuild", good)[0] == "Healthy" and kstatus.compute(good).status == kstatus.CURRENT
    assert next(c for c in st["conditions"] if c["type"] == "Ready")["status"] == "True"
    top1 = _checks(st)["top-1 accuracy"]
    assert top1["passed"] and top1["baseline"] >= 85 and top1["deltaPp"] >= -2.0
    report = _stored(store, st["gates"]["reportUri"]).read_text()
    assert "top-1 accuracy" in report and "<img" in report
    result = json.loads(_stored(store, st["gates"]["resultUri"]).read_text())
    assert result["passed"] is True

    constant = write_constant_calibration(
        tmp_path / "constant", classifier.input_name, [1, *classifier.input_shape], value=0.0, count=32
    )
    builds.create(_build("cls-bad", classifier, constant, _classification(classifier), ["[4,3,32,32]", "[1,3,32,32]"]))
    bad = builds.wait_condition("cls-bad", "GatesPassed", "False", timeout=900)
    while bad["status"].get("phase") not in ("GateFailed", "Failed", "Stalled"):
        bad = builds.wait_condition("cls-bad", "Stalled", "True", timeout=900)
    st = bad["status"]
    assert st["phase"] == "GateFailed", st
    # GitOps: a real failed-gate object is Degraded for Argo CD and Failed for kstatus (Flux, kubectl wait).
    assert health("BModelBuild", bad)[0] == "Degraded" and kstatus.compute(bad).status == kstatus.FAILED
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GateFailed")
    top1 = _checks(st)["top-1 accuracy"]
    assert not top1["passed"] and top1["deltaPp"] < -2.0
    # The operator's /metrics carries the same figures as the status of the last gate run.
    m = scrape(operator)
    key = 'bmfleet_gate_metric{gate="classification",metric="top-1 accuracy",model="%s"}'
    assert m[key % "int8"] == pytest.approx(top1["value"], abs=1e-3)
    assert m[key % "fp32"] == pytest.approx(top1["baseline"], abs=1e-3)
    assert m['bmfleet_gate_checks_total{gate="classification",result="fail"}'] >= 1
    assert m['bmfleet_builds{phase="GateFailed"}'] >= 1 and m['bmfleet_builds{phase="Verified"}'] >= 1
    assert f"{-top1['deltaPp']:.2f} pp" in ready["message"] or "top-1" in ready["message"]


@pytest.mark.timeout(1500)
def test_detection_gate_end_to_end(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path,
    detector: TrainedModel,
) -> None:  # fmt: skip
    store = tmp_path / "store"
    create_store_claim(sandbox, namespace, "artifacts", store)
    pre = {"mean": detector.preprocess["mean"], "scale": detector.preprocess["scale"]}
    gates = {
        "detection": {
            "annotationsUri": f"file://{detector.test_dir}/annotations.json",
            "imagesUri": f"file://{detector.test_dir}/images",
            "preprocess": pre,
            "decode": detector.gate_decode,
            "nms": detector.gate_nms,
        }
    }
    builds.create(_build("det-good", detector, detector.calibration_dir, gates, ["[4,3,64,64]", "[1,3,64,64]"]))
    done = builds.wait_condition("det-good", "Ready", "True", timeout=1200)
    st = done["status"]
    checks = _checks(st)
    for metric in ("mAP@[.50:.95]", "mAP@.50"):
        assert checks[metric]["baseline"] > 0 and checks[metric]["value"] is not None
        assert checks[metric]["deltaPp"] == pytest.approx(
            checks[metric]["value"] - checks[metric]["baseline"], abs=1e-3
        )
    report = _stored(store, st["gates"]["reportUri"]).read_text()
    assert "mAP" in report and report.count("<img") >= 3


@pytest.mark.timeout(1500)
def test_bad_gate_inputs_stall_with_a_clear_reason(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path,
    classifier: TrainedModel,
) -> None:  # fmt: skip
    create_store_claim(sandbox, namespace, "artifacts", tmp_path / "store")
    shapes = ["[1,3,32,32]"]
    mismatch = tmp_path / "mismatch"
    shutil.copytree(classifier.test_dir, mismatch)
    lines = (mismatch / "labels.txt").read_text().splitlines()
    (mismatch / "labels.txt").write_text("\n".join([lines[0].rsplit(maxsplit=1)[0] + " 15", *lines[1:]]) + "\n")
    cases = {
        "missing": ({"datasetUri": f"file://{tmp_path}/no-such-dataset"}, "no-such-dataset"),
        "labels": ({"datasetUri": f"file://{mismatch}"}, "label 15"),
        "output": ({"output": "nope"}, "'nope' is not an output"),
        "shape": ({"preprocess": {"resize": [64, 64]}}, "no stage takes it"),
    }
    for name, (override, _) in cases.items():
        gate = _classification(classifier)
        gate["classification"].update(override)
        builds.create(_build(f"cls-{name}", classifier, classifier.calibration_dir, gate, shapes))
    for name, (_, words) in cases.items():
        st = builds.wait_condition(f"cls-{name}", "Stalled", "True", timeout=900)["status"]
        assert st["phase"] == "Stalled", (name, st)
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "BadGateInput", (name, ready)
        assert words in ready["message"], (name, ready["message"])
