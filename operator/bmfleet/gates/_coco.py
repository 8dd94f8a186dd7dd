"""The only module that touches pycocotools (it has no type stubs): a narrow, typed, quiet wrapper.

Everything pycocotools computes (matching, crowd handling, area ranges, the 101-point interpolated precision,
the 12 summary stats) stays pycocotools'; this module only feeds it validated dicts and hands back arrays.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools.coco import COCO  # type: ignore[import-untyped]
from pycocotools.cocoeval import COCOeval  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CocoEvalOutput:
    """What COCOeval leaves behind after evaluate/accumulate/summarize (bbox, default parameters)."""

    stats: FloatArray  # (12,), -1 where pycocotools has nothing to average
    precision: FloatArray  # (T=10 IoUs, R=101 recalls, K classes, A=4 areas, M=3 maxDets), -1 = no gt
    recall: FloatArray  # (T, K, A, M)
    iou_thrs: FloatArray  # (T,)
    rec_thrs: FloatArray  # (R,)
    cat_ids: list[int]  # K, in pycocotools' order (sorted ids)
    area_labels: list[str]  # A: all, small, medium, large
    max_dets: list[int]  # M: 1, 10, 100


def _index(dataset: dict[str, Any]) -> Any:
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def run_bbox_eval(gt: dict[str, Any], dets: list[dict[str, Any]]) -> CocoEvalOutput:
    """Run pycocotools' bbox evaluation on already-validated inputs, with its progress prints swallowed.

    `loadRes` cannot take an empty result list (it reads `anns[0]`), so no detections become an empty result
    set built the way `loadRes` builds one (same images and categories, no annotations)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _index(copy.deepcopy(gt))
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        else:
            coco_dt = _index(
                {
                    "images": list(coco_gt.dataset["images"]),
                    "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                    "annotations": [],
                }
            )
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    p = ev.params
    return CocoEvalOutput(
        stats=np.asarray(ev.stats, dtype=np.float64),
        precision=np.asarray(ev.eval["precision"], dtype=np.float64),
        recall=np.asarray(ev.eval["recall"], dtype=np.float64),
        iou_thrs=np.asarray(p.iouThrs, dtype=np.float64),
        rec_thrs=np.asarray(p.recThrs, dtype=np.float64),
        cat_ids=[int(c) for c in p.catIds],
        area_labels=[str(a) for a in p.areaRngLbl],
        max_dets=[int(m) for m in p.maxDets],
    )
