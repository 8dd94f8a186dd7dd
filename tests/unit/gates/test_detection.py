"""COCO mAP: bmfleet.gates.detection (library and `bmfleet gate eval-detection --json`) equals pycocotools run
independently on every fixture, to 1e-9 on every metric; faster-coco-eval agrees on the 12 stats."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from bmfleet.gates.detection import STATS, DetectionMetrics, evaluate
from bmfleet.gates.errors import GateInputError
from tests.unit.gates.conftest import COCO_DIR, FIXTURES, load_fixture, none_for_minus_one, pycocotools_eval

TOL = 1e-9


def assert_close(ours: list[float | None], expected: list[float | None], what: str) -> None:
    assert len(ours) == len(expected), what
    for i, (a, b) in enumerate(zip(ours, expected, strict=True)):
        if b is None:
            assert a is None, f"{what}[{i}]: {a} where pycocotools has -1"
        else:
            assert a is not None and abs(a - b) <= TOL, f"{what}[{i}]: {a} != {b}"


def check_against_pycocotools(m: DetectionMetrics, gt: dict[str, Any], dets: list[dict[str, Any]]) -> None:
    ref = pycocotools_eval(gt, dets)
    assert_close(m.stats(), none_for_minus_one(ref.stats), "stats")
    assert [c.category_id for c in m.per_class] == sorted(c["id"] for c in gt["categories"])
    for c in m.per_class:  # per class: pycocotools restricted to that one category, its own summarize()
        one = pycocotools_eval(gt, dets, cat_ids=[c.category_id])
        assert_close([c.ap, c.ap50], none_for_minus_one(one.stats[:2]), f"class {c.category_id}")
    prec = ref.eval["precision"][:, :, :, 0, 2]
    valid = prec[0, 0, :] > -1
    np.testing.assert_allclose(m.pr_curve.recall, ref.params.recThrs, rtol=0, atol=TOL)
    np.testing.assert_allclose(m.pr_curve.precision_iou50, prec[0][:, valid].mean(axis=1), rtol=0, atol=TOL)
    np.testing.assert_allclose(m.pr_curve.precision_mean, prec[:, :, valid].mean(axis=(0, 2)), rtol=0, atol=TOL)


@pytest.mark.parametrize("name", [f for f in FIXTURES if f != "no_dets"])
def test_library_equals_pycocotools(name: str) -> None:
    gt, dets = load_fixture(name)
    m = evaluate(gt, dets)
    check_against_pycocotools(m, gt, dets)
    assert m.num_dets == len(dets) and m.num_images == len(gt["images"])
    assert m.num_gt + m.num_crowd == len(gt["annotations"])


@pytest.mark.parametrize("name", [f for f in FIXTURES if f != "no_dets"])
def test_cli_json_equals_pycocotools(name: str, cli: Any) -> None:
    gt, dets = load_fixture(name)
    code, out, err = cli(
        "eval-detection",
        "--gt",
        str(COCO_DIR / f"{name}.gt.json"),
        "--dets",
        str(COCO_DIR / f"{name}.dets.json"),
        "--json",
    )
    assert code == 0, err
    check_against_pycocotools(DetectionMetrics.model_validate(json.loads(out)), gt, dets)


@pytest.mark.parametrize("name", FIXTURES)
def test_faster_coco_eval_agrees_on_the_12_stats(name: str) -> None:
    """faster-coco-eval's own suite asserts its `stats` equal pycocotools' (test_extensive_pycocotools_comparison,
    tolerance 1e-10), so the stats are where the two must agree; it also accepts an empty result list."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt, dets = load_fixture(name)
    coco_gt = COCO(copy.deepcopy(gt))
    ev = COCOeval_faster(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox", print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert_close(evaluate(gt, dets).stats(), none_for_minus_one(ev.stats[:12]), "stats")


def test_no_detections_scores_zero_wherever_there_is_ground_truth() -> None:
    gt, dets = load_fixture("no_dets")
    assert dets == []
    m = evaluate(gt, dets)
    assert m.stats() == [0.0] * 12  # the basic scene has small, medium and large boxes
    assert all(c.ap == 0.0 and c.ap50 == 0.0 for c in m.per_class)
    assert set(m.pr_curve.precision_iou50) == {0.0}


def test_fixtures_are_what_they_claim() -> None:
    crowd, _ = load_fixture("crowd")
    assert sum(a["iscrowd"] for a in crowd["annotations"]) >= 3
    empty, _ = load_fixture("empty_images")
    assert len({i["id"] for i in empty["images"]} - {a["image_id"] for a in empty["annotations"]}) >= 5
    many, many_dets = load_fixture("many_classes")
    assert len(many["categories"]) >= 20
    m = evaluate(many, many_dets)
    assert any(c.num_gt == 0 and c.ap is None for c in m.per_class)  # class without ground truth
    assert any(c.num_gt > 0 and c.num_dets == 0 and c.ap == 0.0 for c in m.per_class)  # never detected
    assert all(v is not None for v in m.stats())  # small, medium and large all present
    _, dense_dets = load_fixture("dense")
    assert max(np.unique([d["image_id"] for d in dense_dets], return_counts=True)[1]) > 100


def test_crowd_region_detections_are_ignored_not_false_positives() -> None:
    """A detection inside a crowd region matches it and is ignored (pycocotools), so AP stays 1.0."""
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [100, 100, 200, 200], "area": 40000, "iscrowd": 1},
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.5},
        {"image_id": 1, "category_id": 1, "bbox": [120, 120, 30, 30], "score": 0.9},  # inside the crowd
    ]
    m = evaluate(gt, dets)
    assert m.ap == pytest.approx(1.0, abs=1e-12) and m.num_crowd == 1 and m.num_gt == 1
    dets[1]["bbox"] = [400, 400, 30, 30]  # outside: a false positive ranked first, so precision is 1/2 throughout
    assert evaluate(gt, dets).ap50 == pytest.approx(0.5, abs=1e-9)


GT: dict[str, Any] = {
    "images": [{"id": 1}, {"id": 2}],
    "categories": [{"id": 3, "name": "cat"}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 12}],
}
DET = {"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9}


@pytest.mark.parametrize(
    ("gt_patch", "det_patch", "message"),
    [
        ({}, {"image_id": 9}, "detection #0: image_id 9 is not an image of the ground truth"),
        ({}, {"category_id": 4}, "detection #0: category_id 4 is not a category of the ground truth"),
        ({}, {"bbox": [1, 2, 3]}, "detection #0: bbox must be 4 finite numbers"),
        ({}, {"bbox": [1, 2, -3, 4]}, "detection #0: bbox width and height must be >= 0"),
        ({}, {"bbox": [1, 2, float("nan"), 4]}, "detection #0: bbox must be 4 finite numbers"),
        ({}, {"bbox": "1,2,3,4"}, "detection #0: bbox must be 4 finite numbers"),
        ({}, {"score": None}, "detection #0: 'score' must be a finite number"),
        ({}, {"image_id": True}, "detection #0: 'image_id' must be an integer"),
        ({"annotations": None}, {}, "ground truth: 'annotations' must be a list of objects"),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}]}, {}, "'area' must be"),
        (
            {"annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 1}]},
            {},
            "image_id 5",
        ),
        ({"images": [{"id": 1}, {"id": 1}]}, {}, "ground truth image #1: duplicate id 1"),
        ({"categories": [{"name": "x"}]}, {}, "ground truth category #0: 'id' must be an integer"),
    ],
)
def test_bad_input_is_named(gt_patch: dict[str, Any], det_patch: dict[str, Any], message: str) -> None:
    gt = copy.deepcopy(GT) | gt_patch
    with pytest.raises(GateInputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        evaluate(gt, [DET | det_patch])


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_gt_key(key: str) -> None:
    gt = {k: v for k, v in GT.items() if k != key}
    with pytest.raises(GateInputError, match=f"ground truth: missing key '{key}'"):
        evaluate(gt, [])


def test_dets_must_be_a_list() -> None:
    with pytest.raises(GateInputError, match="detections: must be a list"):
        evaluate(GT, {"annotations": []})


def test_stat_names_follow_pycocotools_order() -> None:
    assert [n for n, _ in STATS][:3] == ["ap", "ap50", "ap75"] and len(STATS) == 12
    assert all(f"maxDets={d}" in STATS[6 + i][1] for i, d in enumerate((1, 10, 100)))


def test_missing_iscrowd_means_not_crowd() -> None:
    """pycocotools raises KeyError without `iscrowd`; the gate reads it as 0, as the COCO format intends."""
    gt, dets = load_fixture("basic")
    bare = copy.deepcopy(gt)
    for a in bare["annotations"]:
        assert a.pop("iscrowd") == 0
    assert evaluate(bare, dets) == evaluate(gt, dets)


def test_inputs_are_not_mutated() -> None:
    gt, dets = load_fixture("crowd")
    before = (json.dumps(gt), json.dumps(dets))
    evaluate(gt, dets)
    assert (json.dumps(gt), json.dumps(dets)) == before
