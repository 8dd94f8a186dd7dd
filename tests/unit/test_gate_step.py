"""The gate step: its Job, the status it leads to, the batch plan over stages, YOLO decoding and NMS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bmfleet.api.build import BModelBuildSpec, Decode, Nms
from bmfleet.gates.datasets import batch_plan
from bmfleet.gates.yolo import decode_yolo, detections, nms
from bmfleet.pipeline.gate import build_gate_job
from bmfleet.pipeline.pods import WorkerConfig
from bmfleet.pipeline.status import summarise
from bmfleet.pipeline.stepjob import Owner

SPEC = {
    "toolchain": {"name": "tpu-mlir", "image": "reg/w@sha256:" + "0" * 64},
    "model": {"format": "onnx", "uri": "pvc://models/m.onnx", "sha256": "a" * 64},
    "chip": "BM1684",
    "precision": "INT8",
    "shapes": [{"shape": "[4,3,32,32]"}, {"shape": "[1,3,32,32]"}],
    "calibration": {"datasetUri": "pvc://models/calib", "samples": 4},
    "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
    "gates": {
        "similarity": {"samples": 4},
        "classification": {"datasetUri": "pvc://data/val", "topk": [1, 5], "maxTop1Drop": 2.0},
    },
}
DONE = {"state": "Succeeded", "uri": "pvc://artifacts/builds/blobs/sha256/" + "b" * 64, "digest": "sha256:" + "b" * 64}
SHAPES = [{"index": 0, "inputs": [[4, 3, 32, 32]], "shape": "[4,3,32,32]", "state": "Succeeded"}]


def test_gate_job_runs_the_gates_on_a_chip_node_with_every_input_mounted() -> None:
    spec = BModelBuildSpec.model_validate(SPEC)
    job = build_gate_job(Owner("b", "ns", "uid", 1), spec, str(DONE["uri"]), WorkerConfig(), "img")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["bmfleet", "worker", "gate"]
    args = dict(a.split("=", 1) for a in c["args"])
    assert args["--bmodel"] == DONE["uri"] and args["--model-sha256"] == "a" * 64
    assert json.loads(args["--gates"])["classification"]["maxTop1Drop"] == 2.0
    assert args["--calibration"] == "pvc://models/calib"
    assert pod["nodeSelector"] == {"sophgo.com/chip": "bm1684"}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/run/bmfleet/inputs/models", "/run/bmfleet/inputs/data", "/run/bmfleet/store/artifacts"} <= mounts
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert job["metadata"]["labels"]["bmfleet.io/step"] == "gate"
    other = build_gate_job(Owner("b", "ns", "uid", 1), spec, str(DONE["uri"]) + "0", WorkerConfig(), "img")
    assert other["metadata"]["name"] != job["metadata"]["name"]


def _conds(status: dict[str, object]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in status["conditions"]}  # type: ignore[attr-defined,index]


CHECK = {"gate": "classification", "metric": "top-1 accuracy", "value": 71.0, "baseline": 90.0, "deltaPp": -19.0,
         "threshold": 2.0, "rule": "max_drop", "passed": False}  # fmt: skip


def test_passed_gates_make_the_build_ready_and_verified() -> None:
    gates = {"job": "g", "state": "Succeeded", "passed": True, "summary": "all 3 checks passed", "reportUri": "r"}
    st = summarise(SHAPES, [], 2, combine=DONE, gates=gates)
    c = _conds(st)
    assert st["phase"] == "Verified" and c["Ready"]["status"] == "True" and c["GatesPassed"]["status"] == "True"
    assert c["Ready"]["observedGeneration"] == 2


def test_a_failed_gate_is_not_ready_with_reason_and_numbers() -> None:
    gates = {"job": "g", "state": "Succeeded", "passed": False, "summary": "top-1 accuracy: dropped 19.00 pp",
             "checks": [CHECK]}  # fmt: skip
    st = summarise(SHAPES, [], 1, combine=DONE, gates=gates)
    c = _conds(st)
    assert st["phase"] == "GateFailed"
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "GateFailed")
    assert c["Stalled"]["status"] == "True" and "19.00 pp" in c["Ready"]["message"]
    assert st["gates"]["checks"] == [CHECK]


def test_gates_that_cannot_run_on_bad_input_stall_with_the_reason() -> None:
    gates = {"job": "g", "state": "Failed", "reason": "BadGateInput", "message": "labels.txt has label 12 but ..."}
    st = summarise(SHAPES, [], 1, combine=DONE, gates=gates)
    c = _conds(st)
    assert st["phase"] == "Stalled" and c["Stalled"]["reason"] == "BadGateInput"
    assert "label 12" in c["Ready"]["message"]


def test_gating_is_progress_and_waits_for_combine() -> None:
    st = summarise(SHAPES, [], 1, combine=DONE, gates={"job": "g", "state": "Running"})
    assert st["phase"] == "Gating" and _conds(st)["Reconciling"]["status"] == "True"
    st = summarise(SHAPES, [], 1, combine={"state": "Running"}, gates={"state": "Pending"})
    assert _conds(st)["GatesPassed"]["reason"] == "WaitingForCombine"


@pytest.mark.parametrize(
    ("total", "stages", "plan"),
    [(10, [4, 1], [1, 4, 4, 1]), (1, [4, 1], [1]), (4, [4, 1], [1, 4]), (5, [4, 1], [1, 4]), (3, [4], [4]),
     (9, [8, 2], [2, 8]), (12, [8, 2], [2, 8, 2])],
)  # fmt: skip
def test_batch_plan_covers_every_stage_when_it_can(total: int, stages: list[int], plan: list[int]) -> None:
    assert batch_plan(total, stages) == plan
    assert sum(plan) >= total


def test_yolo_decoding_and_nms_give_the_box_back_in_original_pixels() -> None:
    decode = Decode.model_validate(
        {"type": "yolo", "numClasses": 2, "heads": [{"output": "head", "stride": 8, "anchors": [[16, 16]]}]}
    )
    head = np.full((1 * 7, 4, 4), -20.0, dtype=np.float32)
    # cell (x=2, y=1): sig(0)=0.5 -> centre offset 0.5 -> cx = 2.5*8 = 20, cy = 12; sig(0)*2 = 1 -> w = h = 16
    head[0:4, 1, 2] = 0.0
    head[4, 1, 2] = 20.0  # objectness ~1
    head[6, 1, 2] = 20.0  # class 1
    rows = decode_yolo({"head": head}, decode)
    best = rows[np.argmax(rows[:, 5])]
    np.testing.assert_allclose(best[:4], [12, 4, 28, 20], atol=1e-4)
    dets = detections(rows, Nms(), 7, [3, 9], ratio=(0.5, 0.5), pad=(0.0, 0.0), size=(64, 64))
    assert dets[0]["category_id"] == 9 and dets[0]["image_id"] == 7
    np.testing.assert_allclose(dets[0]["bbox"], [24, 8, 32, 32], atol=1e-3)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], dtype=np.float32), 0.45) == [0, 2]
    assert nms(boxes, np.array([0.5, 0.8, 0.7], dtype=np.float32), 0.95) == [1, 2, 0]
