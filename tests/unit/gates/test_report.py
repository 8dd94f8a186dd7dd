"""report.html: every section, every plot a decodable PNG, nothing external, result.json beside it."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bmfleet.gates.errors import GateInputError
from bmfleet.gates.report import DetectionSample, ReportData, write_report
from bmfleet.gates.result import GateResult
from tests.unit.gates.sample_report import full_report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GateResult]:
    out = tmp_path_factory.mktemp("report") / "out"
    path, result = full_report(out)
    assert path == out / "report.html"
    return path, result


def test_report_has_every_section_and_plot(report: tuple[Path, GateResult]) -> None:
    path, result = report
    page = path.read_text()
    for heading in (
        "Summary",
        "Tensor similarity",
        "Classification",
        "Detection",
        "Per-class AP",
        "Precision-recall",
        "Sample detections",
    ):
        assert f">{heading}" in page, heading
    srcs = re.findall(r'<img alt="([^"]*)" src="([^"]*)"', page)
    assert len(srcs) == 2 + 2 + 2  # two similarity histograms, AP bars + PR curves, two samples
    for alt, src in srcs:
        assert src.startswith("data:image/png;base64,"), alt
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100, alt
    assert page.count("<tr>") >= 1 + len(result.checks)  # summary rows
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "&lt;b&gt;tricky &amp; $_$ name&lt;/b&gt;" in page and "<b>tricky" not in page
    assert GateResult.model_validate(json.loads((path.parent / "result.json").read_text())) == result
    assert ("PASSED" if result.passed else "FAILED") in page


def test_summary_rows_show_values_deltas_and_verdicts(report: tuple[Path, GateResult]) -> None:
    path, result = report
    page = path.read_text()
    top1 = next(c for c in result.checks if c.metric == "top-1 accuracy")
    assert f"{top1.delta_pp:+.2f} pp" in page and f"{top1.value:.2f}%" in page
    assert page.count('class="fail">FAIL') == len(result.failed)


def test_sections_are_optional(tmp_path: Path) -> None:
    r = GateResult.of([])
    page = write_report(r, ReportData(title="empty"), tmp_path).read_text()
    assert "<img" not in page and ">Detection<" not in page and "no gate checks ran" in page


@pytest.mark.parametrize("image", [np.zeros((4, 4, 2)), "missing.png"])
def test_bad_sample_image_is_an_input_error(tmp_path: Path, image: Any) -> None:
    data = ReportData(
        samples=[DetectionSample("x", image if isinstance(image, np.ndarray) else tmp_path / image, [], [])]
    )
    with pytest.raises(GateInputError, match="sample image"):
        write_report(GateResult.of([]), data, tmp_path)


def _bars_png_height(n_classes: int) -> int:
    from bmfleet.gates import _plots
    from bmfleet.gates.detection import STATS, ClassAP, DetectionMetrics, PRCurve

    def metrics(shift: float) -> DetectionMetrics:
        per_class = [
            ClassAP(category_id=i, name=f"c{i}", num_gt=1, num_dets=1, ap=(i * shift) % 1, ap50=0.5)
            for i in range(n_classes)
        ]
        empty = PRCurve(recall=[], precision_iou50=[], precision_mean=[])
        stats = dict.fromkeys((n for n, _ in STATS), 0.5)
        return DetectionMetrics(
            **stats, per_class=per_class, pr_curve=empty, num_images=1, num_gt=1, num_crowd=0, num_dets=1
        )

    with Image.open(io.BytesIO(_plots.per_class_ap(metrics(0.37), metrics(0.11)))) as im:
        return im.height


def test_per_class_chart_keeps_at_most_100_classes() -> None:
    assert _bars_png_height(150) == _bars_png_height(100) > _bars_png_height(10)
