"""The trained sandbox models: their synthetic data is learnable and the FP32 models clear their bars, so the
INT8 gates built on them measure quantisation rather than noise. The reference decode + NMS here is
independent of the gate's own, on purpose."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bmfleet.sandbox.trained import (
    TrainedModel,
    cached_models_dir,
    train_classifier,
    train_detector,
    write_constant_calibration,
    write_datasets,
)

pytestmark = [pytest.mark.toolchain, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def python(tpu_mlir_bin: Path) -> Path:
    return tpu_mlir_bin / "python"


@pytest.fixture(scope="module")
def classifier(python: Path) -> TrainedModel:
    return train_classifier(cached_models_dir() / "classifier", python)


@pytest.fixture(scope="module")
def detector(python: Path) -> TrainedModel:
    return train_detector(cached_models_dir() / "detector", python)


def _inputs(model: TrainedModel, paths: list[Path]) -> np.ndarray:
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).astype(np.float32)
    pre = model.preprocess
    return ((pixels - np.array(pre["mean"])) * np.array(pre["scale"])).transpose(0, 3, 1, 2).astype(np.float32)


def _run(model: TrainedModel, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model.onnx), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run([model.output_name], {model.input_name: x})[0]
    return out


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order, keep = scores.argsort()[::-1], []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        wh = np.clip(np.minimum(boxes[i, 2:], boxes[rest, 2:]) - np.maximum(boxes[i, :2], boxes[rest, :2]), 0, None)
        inter = wh[:, 0] * wh[:, 1]
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return keep


def _decode(head: np.ndarray, decode: dict[str, Any]) -> list[tuple[float, int, list[float]]]:
    """One image's [A*(5+C), G, G] logits -> (score, class, x1y1x2y2) after per-class NMS, as trained.py says."""
    anchors, nc, stride, nms = np.array(decode["anchors"]), decode["numClasses"], decode["strides"][0], decode["nms"]
    g = head.shape[-1]
    s = 1 / (1 + np.exp(-head.reshape(len(anchors), 5 + nc, g, g).astype(np.float64)))
    gy, gx = np.mgrid[0:g, 0:g]
    cx, cy = (s[:, 0] * 2 - 0.5 + gx) * stride, (s[:, 1] * 2 - 0.5 + gy) * stride
    w, h = (s[:, 2] * 2) ** 2 * anchors[:, 0, None, None], (s[:, 3] * 2) ** 2 * anchors[:, 1, None, None]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 4)
    scores = (s[:, 4:5] * s[:, 5:]).transpose(0, 2, 3, 1).reshape(-1, nc)
    found: list[tuple[float, int, list[float]]] = []
    for c in range(nc):
        sel = scores[:, c] >= nms["scoreThreshold"]
        found += [
            (float(scores[sel, c][k]), c, boxes[sel][k].tolist())
            for k in _nms(boxes[sel], scores[sel, c], nms["iouThreshold"])
        ]
    return sorted(found, key=lambda d: -d[0])[: nms["maxDetections"]]


def _coco_map(model: TrainedModel) -> tuple[float, float]:
    """(mAP@[.5:.95], mAP@0.5) of the ONNX model on the test split."""
    ann = model.test_dir / "annotations.json"
    images = json.loads(ann.read_text())["images"]
    heads = _run(model, _inputs(model, [model.test_dir / "images" / i["file_name"] for i in images]))
    assert model.decode is not None
    dets = [
        {"image_id": image["id"], "category_id": c + 1, "score": score, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
        for image, head in zip(images, heads, strict=True)
        for score, c, b in _decode(head, model.decode)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def test_classifier_reaches_85_percent_top1(classifier: TrainedModel) -> None:
    lines = [line.split() for line in (classifier.test_dir / "labels.txt").read_text().splitlines()]
    assert len(classifier.class_names) == 10
    assert (classifier.test_dir / "classes.txt").read_text().split() == list(classifier.class_names)
    logits = _run(classifier, _inputs(classifier, [classifier.test_dir / p for p, _ in lines]))
    top1 = float((logits.argmax(1) == np.array([int(label) for _, label in lines])).mean())
    print(f"classifier FP32 top-1 {top1:.3f} on {len(lines)} test images; {classifier.metrics}")
    assert logits.shape == (len(lines), 10)
    assert top1 >= 0.85


def test_detector_reaches_map50_half(detector: TrainedModel) -> None:
    doc = json.loads((detector.test_dir / "annotations.json").read_text())
    areas = [a["area"] for a in doc["annotations"]]
    assert min(areas) < 32**2 <= max(areas), "both small and medium objects"
    assert {a["image_id"] for a in doc["annotations"]} < {i["id"] for i in doc["images"]}, "some images are empty"
    assert [c["name"] for c in doc["categories"]] == list(detector.class_names)
    assert detector.gate_decode == {
        "type": "yolo",
        "heads": [{"output": "head", "stride": 8, "anchors": detector.decode["anchors"] if detector.decode else None}],
        "numClasses": 3,
    }
    mean_ap, map50 = _coco_map(detector)
    print(f"detector FP32 mAP@[.5:.95] {mean_ap:.3f} mAP@0.5 {map50:.3f}; {detector.metrics}")
    assert map50 >= 0.5


@pytest.mark.parametrize("kind", ["classifier", "detector"])
def test_models_suit_tpu_mlir(kind: str, classifier: TrainedModel, detector: TrainedModel) -> None:
    """onnx 1.14 inside TPU-MLIR reads IR <= 8; the batch axis is symbolic; calibration is preprocessed inputs."""
    model = classifier if kind == "classifier" else detector
    proto = onnx.load(str(model.onnx))
    assert proto.ir_version <= 8
    assert [i.name for i in proto.graph.input] == [model.input_name]
    assert [o.name for o in proto.graph.output] == [model.output_name]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", *model.input_shape]
    samples = sorted(model.calibration_dir.glob("*.npz"))
    assert len(samples) == 32
    with np.load(samples[5]) as npz:
        assert list(npz) == [model.input_name]
        x = npz[model.input_name]
    assert x.dtype == np.float32 and x.shape == (1, *model.input_shape)
    assert -1.0 <= x.min() < x.max() <= 1.0


def _digests(directory: Path, pattern: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob(pattern)) if p.is_file()}


@pytest.mark.parametrize("kind", ["classifier", "detector"])
def test_datasets_are_deterministic(
    kind: str, python: Path, classifier: TrainedModel, detector: TrainedModel, tmp_path: Path
) -> None:
    """Same seed, same bytes; a smaller split is a prefix of the trained one; another seed differs."""
    runs = [
        write_datasets(tmp_path / name, kind, python, seed, 40, 10) for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    a, b, c = ({s: _digests(r / s, "**/*") for s in ("train", "test")} for r in runs)
    assert a == b
    assert a["train"] != c["train"]
    trained = classifier if kind == "classifier" else detector
    for split, directory in (("train", trained.train_dir), ("test", trained.test_dir)):
        small, full = _digests(tmp_path / "a" / split / "images", "*.png"), _digests(directory / "images", "*.png")
        assert {name: full.get(name) for name in small} == small


def test_constant_calibration(tmp_path: Path) -> None:
    out = write_constant_calibration(tmp_path / "cal", "input", (3, 32, 32), value=0.5, count=4)
    files = sorted(out.glob("*.npz"))
    assert len(files) == 4
    with np.load(files[0]) as npz:
        assert npz["input"].shape == (1, 3, 32, 32) and np.all(npz["input"] == np.float32(0.5))
