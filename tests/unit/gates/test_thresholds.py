"""Pass/fail of INT8 against FP32, with the documented defaults (top-1 2.0 pp, mAP 4.0 pp, tolerance 0.85,0.45)."""

from __future__ import annotations

import json

import pytest

from bmfleet.gates.classification import ClassificationMetrics
from bmfleet.gates.detection import evaluate
from bmfleet.gates.errors import GateInputError
from bmfleet.gates.result import GateResult, combine
from bmfleet.gates.similarity import compare_outputs
from bmfleet.gates.thresholds import (
    ClassificationThresholds,
    DetectionThresholds,
    SimilarityThresholds,
    check_classification,
    check_detection,
    check_similarity,
)
from tests.unit.gates.conftest import load_fixture


def cls(top1: float, top5: float = 95.0) -> ClassificationMetrics:
    return ClassificationMetrics(
        num_samples=1000, num_classes=1000, accuracy={1: top1, 5: top5}, correct={1: int(top1 * 10), 5: int(top5 * 10)}
    )


def test_defaults_are_the_documented_ones() -> None:
    assert ClassificationThresholds().max_drop == {1: 2.0} and ClassificationThresholds().warn_drop == {1: 1.5}
    d = DetectionThresholds()
    assert (d.max_map_drop, d.max_map50_drop, d.warn_map_drop) == (4.0, 4.0, 3.5)
    s = SimilarityThresholds()
    assert (s.min_cosine, s.min_euclidean_similarity, s.max_euclidean_distance) == (0.85, 0.45, None)


@pytest.mark.parametrize(
    ("fp32", "int8", "passed", "warning"),
    [
        (80.1, 78.7, True, False),  # ResNet50 on BM1684: -1.4 pp
        (80.2, 78.2, True, True),  # -2.0 pp exactly: passes (<=), above the 1.5 pp warn level
        (64.4, 62.4, True, True),  # -2.000000000000007 in floats: still 2.0 pp
        (80.0, 77.9, False, False),  # -2.1 pp
        (80.0, 81.0, True, False),  # a gain
    ],
)
def test_top1_default(fp32: float, int8: float, passed: bool, warning: bool) -> None:
    r = check_classification(cls(int8), cls(fp32))
    (c,) = r.checks
    assert (r.passed, c.passed, c.warning) == (passed, passed, warning)
    assert c.metric == "top-1 accuracy" and c.rule == "max_drop" and c.threshold == 2.0
    assert c.delta_pp == pytest.approx(int8 - fp32)
    assert c.value == int8 and c.baseline == fp32 and c.unit == "%"


def test_top5_drop_and_absolute_minimum() -> None:
    th = ClassificationThresholds(max_drop={1: 2.0, 5: 1.0}, min_accuracy={1: 75.0})
    r = check_classification(cls(78.0, 93.5), cls(79.0, 95.0), th)
    assert [(c.metric, c.rule, c.passed) for c in r.checks] == [
        ("top-1 accuracy", "max_drop", True),
        ("top-1 accuracy", "min", True),
        ("top-5 accuracy", "max_drop", False),
    ]
    assert not r.passed and r.failed[0].detail == "drop 1.50 pp > 1.00 pp"
    low = check_classification(cls(74.9), cls(75.5), ClassificationThresholds(min_accuracy={1: 75.0}))
    assert not low.passed and low.failed[0].rule == "min" and low.failed[0].detail == "74.9% < 75%"


def test_threshold_for_uncomputed_k_is_an_input_error() -> None:
    with pytest.raises(GateInputError, match="top-3"):
        check_classification(cls(80), cls(80), ClassificationThresholds(max_drop={3: 1.0}))


def test_detection_default_on_a_real_evaluation() -> None:
    """FP32 = the fixture's detections; INT8 = the same with a quarter of them dropped."""
    gt, dets = load_fixture("basic")
    fp32 = evaluate(gt, dets)
    int8 = evaluate(gt, [d for i, d in enumerate(dets) if i % 4])
    r = check_detection(int8, fp32)
    assert [c.metric for c in r.checks] == ["mAP@[.50:.95]", "mAP@.50"]
    ap = r.checks[0]
    assert ap.value == pytest.approx(100 * int8.ap) and ap.baseline == pytest.approx(100 * fp32.ap)
    assert ap.delta_pp == pytest.approx(100 * (int8.ap - fp32.ap))
    assert ap.delta_pp < -4.0 and not r.passed  # dropping a quarter of the detections costs more than 4 pp
    assert check_detection(fp32, fp32).passed


@pytest.mark.parametrize(("drop", "passed", "warning"), [(3.3, True, False), (3.7, True, True), (4.1, False, False)])
def test_detection_drop_boundaries(drop: float, passed: bool, warning: bool) -> None:
    gt, dets = load_fixture("basic")
    fp32 = evaluate(gt, dets)
    int8 = fp32.model_copy(update={"ap": fp32.ap - drop / 100, "ap50": fp32.ap50})  # type: ignore[operator]
    c = check_detection(int8, fp32).checks[0]
    assert (c.passed, c.warning) == (passed, warning)


def test_detection_minimums_and_undefined_values_fail() -> None:
    gt, dets = load_fixture("basic")
    m = evaluate(gt, dets)
    r = check_detection(m, m, DetectionThresholds(min_map=99.0, max_map50_drop=None))
    assert [(c.rule, c.passed) for c in r.checks] == [("max_drop", True), ("min", False)]
    undefined = m.model_copy(update={"ap": None})
    r = check_detection(undefined, m, DetectionThresholds(max_map50_drop=None))
    assert not r.passed and "undefined" in r.checks[0].detail


def test_similarity_is_strict_like_npz_compare() -> None:
    outs = compare_outputs([{"o": [1.0, 0.0]}], [{"o": [0.0, 1.0]}])  # cosine exactly 0
    assert not check_similarity(outs, SimilarityThresholds(min_cosine=0.0, min_euclidean_similarity=None)).passed
    assert check_similarity(outs, SimilarityThresholds(min_cosine=-0.1, min_euclidean_similarity=None)).passed


def test_similarity_defaults_per_output_and_distance_bound() -> None:
    ref = [{"good": [1.0, 2.0, 3.0, 4.0], "bad": [1.0, -2.0, 3.0, -4.0]}]
    q = [{"good": [1.05, 1.9, 3.1, 4.0], "bad": [-1.0, 2.0, 3.0, 4.0]}]
    r = check_similarity(compare_outputs(q, ref), SimilarityThresholds(max_euclidean_distance=0.2))
    verdict = {c.metric: c.passed for c in r.checks}
    assert verdict == {
        "cosine (good)": True,
        "euclidean similarity (good)": True,
        "euclidean distance (good)": True,
        "cosine (bad)": False,
        "euclidean similarity (bad)": False,
        "euclidean distance (bad)": False,
    }
    assert not r.passed and len(r.failed) == 3


def test_result_combines_and_round_trips_through_json() -> None:
    a = check_classification(cls(79.0), cls(80.0))
    b = check_classification(cls(70.0), cls(80.0))
    both = combine(a, b)
    assert a.passed and not b.passed and not both.passed and len(both.checks) == 2
    assert GateResult.model_validate(json.loads(both.model_dump_json())) == both
    assert both.summary() == "top-1 accuracy: drop 10.00 pp > 2.00 pp"
    assert a.summary() == "all 1 checks passed"
    assert not GateResult.of([]).passed and GateResult.of([]).summary() == "no gate checks ran"
