"""COCO bbox mAP with pycocotools, after validating the inputs pycocotools would silently mis-handle.

pycocotools ignores detections of unknown categories, asserts on unknown images and raises KeyError on a
missing `area`; a gate must instead say which item of which file is wrong. A missing `iscrowd` (KeyError in
pycocotools) means 0, as in COCO files written by tools that omit it. Values are fractions in [0, 1] as
pycocotools reports them; None where pycocotools reports -1 (nothing to average: e.g. no small objects).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, TypeGuard

import numpy as np
from pydantic import BaseModel, Field

from bmfleet.gates._coco import CocoEvalOutput, run_bbox_eval
from bmfleet.gates.errors import GateInputError

# pycocotools' stats[0..11], in order: (field, label as pycocotools' summarize() prints it).
STATS: tuple[tuple[str, str], ...] = (
    ("ap", "AP @[IoU=0.50:0.95 | area=all | maxDets=100]"),
    ("ap50", "AP @[IoU=0.50 | area=all | maxDets=100]"),
    ("ap75", "AP @[IoU=0.75 | area=all | maxDets=100]"),
    ("ap_small", "AP @[IoU=0.50:0.95 | area=small | maxDets=100]"),
    ("ap_medium", "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]"),
    ("ap_large", "AP @[IoU=0.50:0.95 | area=large | maxDets=100]"),
    ("ar1", "AR @[IoU=0.50:0.95 | area=all | maxDets=1]"),
    ("ar10", "AR @[IoU=0.50:0.95 | area=all | maxDets=10]"),
    ("ar100", "AR @[IoU=0.50:0.95 | area=all | maxDets=100]"),
    ("ar_small", "AR @[IoU=0.50:0.95 | area=small | maxDets=100]"),
    ("ar_medium", "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]"),
    ("ar_large", "AR @[IoU=0.50:0.95 | area=large | maxDets=100]"),
)


class ClassAP(BaseModel):
    """AP of one category (area all, maxDets 100), averaged over pycocotools' precision array as Detectron2
    does; None when the category has no non-crowd ground truth."""

    category_id: int
    name: str
    num_gt: int = Field(description="Non-crowd ground-truth boxes.")
    num_dets: int
    ap: float | None = Field(description="AP@[.50:.95].")
    ap50: float | None = Field(description="AP@.50.")


class PRCurve(BaseModel):
    """Interpolated precision at pycocotools' 101 recall thresholds (area all, maxDets 100), averaged over
    the categories that have ground truth; empty lists when none has."""

    recall: list[float]
    precision_iou50: list[float] = Field(description="At IoU 0.50.")
    precision_mean: list[float] = Field(description="Averaged over IoU 0.50:0.05:0.95.")


class DetectionMetrics(BaseModel):
    """pycocotools' 12 bbox stats under clear names, per-class AP and the PR curves for plots."""

    ap: float | None
    ap50: float | None
    ap75: float | None
    ap_small: float | None
    ap_medium: float | None
    ap_large: float | None
    ar1: float | None
    ar10: float | None
    ar100: float | None
    ar_small: float | None
    ar_medium: float | None
    ar_large: float | None
    per_class: list[ClassAP]
    pr_curve: PRCurve
    num_images: int
    num_gt: int = Field(description="Non-crowd ground-truth boxes.")
    num_crowd: int
    num_dets: int

    def stats(self) -> list[float | None]:
        """The 12 values in pycocotools' `stats` order."""
        return [getattr(self, name) for name, _ in STATS]


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _box(where: str, v: object) -> list[float]:
    if not isinstance(v, list | tuple) or len(v) != 4 or not all(_is_num(x) for x in v):
        raise GateInputError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], got {v!r}")
    if v[2] < 0 or v[3] < 0:
        raise GateInputError(f"{where}: bbox width and height must be >= 0, got {list(v)!r}")
    return [float(x) for x in v]


def _records(where: str, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    if key not in doc:
        raise GateInputError(f"{where}: missing key {key!r}")
    items = doc[key]
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise GateInputError(f"{where}: {key!r} must be a list of objects")
    return items


def _ids(where: str, items: list[dict[str, Any]]) -> list[int]:
    seen: set[int] = set()
    for i, item in enumerate(items):
        v = item.get("id")
        if not _is_int(v):
            raise GateInputError(f"{where} #{i}: 'id' must be an integer, got {v!r}")
        if v in seen:
            raise GateInputError(f"{where} #{i}: duplicate id {v}")
        seen.add(v)
    return [int(x["id"]) for x in items]


def _ref(where: str, item: dict[str, Any], key: str, known: set[int], what: str) -> int:
    v = item.get(key)
    if not _is_int(v):
        raise GateInputError(f"{where}: {key!r} must be an integer, got {v!r}")
    if v not in known:
        raise GateInputError(f"{where}: {key} {v} is not {what} of the ground truth")
    return int(v)


def validate_gt(gt: object) -> dict[str, Any]:
    """A clean copy of a COCO ground truth with only what bbox evaluation reads, or GateInputError."""
    if not isinstance(gt, dict):
        raise GateInputError("ground truth: must be a COCO object with images, annotations and categories")
    images, anns, cats = (_records("ground truth", gt, k) for k in ("images", "annotations", "categories"))
    img_ids = set(_ids("ground truth image", images))
    cat_ids = _ids("ground truth category", cats)
    known_cats = set(cat_ids)
    clean_anns = []
    for i, a in zip(_ids("ground truth annotation", anns), anns, strict=True):
        where = f"ground truth annotation id {i}"
        area = a.get("area")
        if not _is_num(area) or area < 0:
            raise GateInputError(f"{where}: 'area' must be a finite number >= 0, got {area!r}")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise GateInputError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r}")
        clean_anns.append(
            {
                "id": i,
                "image_id": _ref(where, a, "image_id", img_ids, "an image"),
                "category_id": _ref(where, a, "category_id", known_cats, "a category"),
                "bbox": _box(where, a.get("bbox")),
                "area": float(area),
                "iscrowd": int(crowd),
            }
        )
    names = [str(c.get("name", c["id"])) for c in cats]
    return {
        "images": [{"id": i} for i in sorted(img_ids)],
        "annotations": clean_anns,
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, names, strict=True)],
    }


def validate_dets(dets: object, gt: dict[str, Any]) -> list[dict[str, Any]]:
    """Clean COCO results (image_id, category_id, bbox, score) checked against a validated ground truth."""
    if not isinstance(dets, list):
        raise GateInputError("detections: must be a list of COCO results (image_id, category_id, bbox, score)")
    img_ids = {i["id"] for i in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    out = []
    for n, d in enumerate(dets):
        where = f"detection #{n}"
        if not isinstance(d, dict):
            raise GateInputError(f"{where}: must be an object, got {d!r}")
        score = d.get("score")
        if not _is_num(score):
            raise GateInputError(f"{where}: 'score' must be a finite number, got {score!r}")
        out.append(
            {
                "image_id": _ref(where, d, "image_id", img_ids, "an image"),
                "category_id": _ref(where, d, "category_id", cat_ids, "a category"),
                "bbox": _box(where, d.get("bbox")),
                "score": float(score),
            }
        )
    return out


def _opt(v: float) -> float | None:
    return None if v == -1 else float(v)


def _metrics(gt: dict[str, Any], dets: list[dict[str, Any]], out: CocoEvalOutput) -> DetectionMetrics:
    a, m = out.area_labels.index("all"), out.max_dets.index(100)
    prec = out.precision[:, :, :, a, m]  # (T, R, K)
    t50 = int(np.flatnonzero(np.isclose(out.iou_thrs, 0.5))[0])
    names = {c["id"]: c["name"] for c in gt["categories"]}
    gt_count = Counter(x["category_id"] for x in gt["annotations"] if not x["iscrowd"])
    det_count = Counter(d["category_id"] for d in dets)
    per_class = []
    for k, cat in enumerate(out.cat_ids):
        s, s50 = prec[:, :, k], prec[t50, :, k]
        per_class.append(
            ClassAP(
                category_id=cat,
                name=names[cat],
                num_gt=gt_count[cat],
                num_dets=det_count[cat],
                ap=float(np.mean(s[s > -1])) if (s > -1).any() else None,
                ap50=float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else None,
            )
        )
    valid = prec[0, 0, :] > -1  # -1 marks a class without ground truth, for every IoU and recall
    curve = PRCurve(
        recall=[float(r) for r in out.rec_thrs],
        precision_iou50=[float(x) for x in prec[t50][:, valid].mean(axis=1)] if valid.any() else [],
        precision_mean=[float(x) for x in prec[:, :, valid].mean(axis=(0, 2))] if valid.any() else [],
    )
    stats = {name: _opt(float(v)) for (name, _), v in zip(STATS, out.stats, strict=True)}
    return DetectionMetrics(
        **stats,
        per_class=per_class,
        pr_curve=curve,
        num_images=len(gt["images"]),
        num_gt=sum(gt_count.values()),
        num_crowd=sum(1 for x in gt["annotations"] if x["iscrowd"]),
        num_dets=len(dets),
    )


def evaluate(gt: object, dets: object) -> DetectionMetrics:
    """COCO bbox evaluation (pycocotools defaults: IoU .50:.05:.95, areas all/small/medium/large, maxDets
    1/10/100) of `dets` (COCO results list) against `gt` (COCO annotations dict). Raises GateInputError."""
    clean_gt = validate_gt(gt)
    clean_dets = validate_dets(dets, clean_gt)
    return _metrics(clean_gt, clean_dets, run_bbox_eval(clean_gt, clean_dets))


def _fmt(v: float | None) -> str:
    return "    n/a" if v is None else f"{v:7.4f}"


def format_table(m: DetectionMetrics) -> str:
    """The 12 stats as pycocotools prints them, then per-class AP (n/a: the class has no ground truth)."""
    lines = [f"{label:<50} = {_fmt(getattr(m, name))}" for name, label in STATS]
    lines.append("")
    lines.append(f"{'id':>5}  {'category':<24} {'gt':>6} {'dets':>6} {'AP':>7} {'AP50':>7}")
    for c in m.per_class:
        lines.append(f"{c.category_id:>5}  {c.name[:24]:<24} {c.num_gt:>6} {c.num_dets:>6} {_fmt(c.ap)} {_fmt(c.ap50)}")
    lines.append(f"{m.num_images} images, {m.num_gt} boxes ({m.num_crowd} crowd regions), {m.num_dets} detections")
    return "\n".join(lines) + "\n"
