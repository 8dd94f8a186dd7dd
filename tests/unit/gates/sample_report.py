"""A gate report with every section, built from the COCO fixtures and seeded random data: shared by the unit
report test and the browser test (tests/integration/test_report_browser.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bmfleet.gates.classification import evaluate as eval_cls
from bmfleet.gates.detection import evaluate as eval_det
from bmfleet.gates.report import DetectionSample, ReportData, write_report
from bmfleet.gates.result import GateResult, combine
from bmfleet.gates.similarity import compare_outputs
from bmfleet.gates.thresholds import check_classification, check_detection, check_similarity
from tests.unit.gates.conftest import load_fixture


def full_report(out_dir: Path) -> tuple[Path, GateResult]:
    """A report with every section: similarity, classification, detection and two sample images."""
    gt, dets = load_fixture("many_classes")
    gt["categories"][0]["name"] = "<b>tricky & $_$ name</b>"
    int8_dets = [d | {"score": d["score"] * 0.9} for i, d in enumerate(dets) if i % 5]
    det_q, det_r = eval_det(gt, int8_dets), eval_det(gt, dets)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 10))
    labels = scores.argmax(axis=1)
    cls_q = eval_cls(labels, scores + rng.normal(scale=0.5, size=scores.shape), [1, 5])
    cls_r = eval_cls(labels, scores, [1, 5])
    ref = [{"logits": rng.normal(size=(1, 10)), "boxes": rng.normal(size=(1, 4, 4))} for _ in range(4)]
    sims = compare_outputs([{k: v + rng.normal(scale=0.1, size=v.shape) for k, v in r.items()} for r in ref], ref)
    result = combine(check_similarity(sims), check_classification(cls_q, cls_r), check_detection(det_q, det_r))
    out_dir.mkdir(parents=True, exist_ok=True)
    photo = out_dir / "photo.png"  # a sample image given by path
    Image.fromarray(rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)).save(photo)
    img_id = gt["images"][0]["id"]
    samples = [
        DetectionSample("array image", np.full((480, 640, 3), 200, dtype=np.uint8), int8_dets[:5], dets[:5]),
        DetectionSample(
            "file image $_$",
            photo,
            [d for d in int8_dets if d["image_id"] == img_id],
            [d for d in dets if d["image_id"] == img_id],
        ),
    ]
    data = ReportData(
        subtitle="build demo, sha256:abc",
        detection_int8=det_q,
        detection_fp32=det_r,
        classification_int8=cls_q,
        classification_fp32=cls_r,
        similarity=sims,
        samples=samples,
    )
    return write_report(result, data, out_dir), result
