"""Detections from model outputs: YOLOv5-style head decoding or already-decoded boxes, then per-class NMS,
mapped back to original image coordinates as COCO results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bmfleet.api.build import Decode, Nms
from bmfleet.gates.errors import GateInputError

F = npt.NDArray[np.float32]


def _sigmoid(x: F) -> F:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -50, 50))), dtype=np.float32)


def decode_yolo(outputs: Mapping[str, F], decode: Decode) -> F:
    """One image's candidate boxes [K, 4 + C] (x1, y1, x2, y2, class scores): per head [A*(5+C), H, W],
    xy = (2 sig(t) - 0.5 + grid) * stride, wh = (2 sig(t))^2 * anchor, score = sig(obj) * sig(cls)."""
    c = decode.num_classes
    rows = []
    for head in decode.heads:
        if head.output not in outputs:
            raise GateInputError(
                f"decode.heads output {head.output!r} is not an output of the model ({sorted(outputs)})"
            )
        t = outputs[head.output]
        a = len(head.anchors)
        if t.ndim != 3 or t.shape[0] != a * (5 + c):
            raise GateInputError(f"output {head.output!r} has shape {list(t.shape)}, expected [{a * (5 + c)}, H, W]")
        h, w = t.shape[1:]
        p = _sigmoid(t.reshape(a, 5 + c, h, w))
        gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        anchors = np.asarray(head.anchors, dtype=np.float32)
        cx = (p[:, 0] * 2 - 0.5 + gx) * head.stride
        cy = (p[:, 1] * 2 - 0.5 + gy) * head.stride
        bw = (p[:, 2] * 2) ** 2 * anchors[:, 0, None, None]
        bh = (p[:, 3] * 2) ** 2 * anchors[:, 1, None, None]
        scores = p[:, 4:5] * p[:, 5:]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        rows.append(np.concatenate([boxes, scores], axis=1).transpose(0, 2, 3, 1).reshape(-1, 4 + c))
    return np.concatenate(rows).astype(np.float32)


def decoded_rows(outputs: Mapping[str, F], decode: Decode) -> F:
    """One image's [K, 4 + C] candidates from a model output [K, 6] (x1, y1, x2, y2, score, class)."""
    if decode.output not in outputs:
        raise GateInputError(f"decode.output {decode.output!r} is not an output of the model ({sorted(outputs)})")
    t = outputs[str(decode.output)].reshape(-1, 6)
    scores = np.zeros((len(t), decode.num_classes), dtype=np.float32)
    cls = t[:, 5].astype(np.int64)
    ok = (cls >= 0) & (cls < decode.num_classes)
    scores[np.nonzero(ok)[0], cls[ok]] = t[ok, 4]
    return np.concatenate([t[:, :4], scores], axis=1)


def nms(boxes: F, scores: F, iou: float) -> list[int]:
    """Greedy NMS (indices kept, best first)."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou]
    return keep


def detections(
    rows: F,
    params: Nms,
    image_id: int,
    category_ids: list[int],
    ratio: tuple[float, float],
    pad: tuple[float, float],
    size: tuple[int, int],
) -> list[dict[str, Any]]:
    """COCO results of one image: score filter, per-class NMS, top max_detections, boxes in original pixels."""
    out: list[tuple[float, int, F]] = []
    for c in range(rows.shape[1] - 4):
        s = rows[:, 4 + c]
        idx = np.nonzero(s >= params.score_threshold)[0]
        if idx.size == 0:
            continue
        for k in nms(rows[idx, :4], s[idx], params.iou_threshold):
            out.append((float(s[idx[k]]), c, rows[idx[k], :4]))
    out.sort(key=lambda d: -d[0])
    results = []
    for score, c, (x1, y1, x2, y2) in out[: params.max_detections]:
        bx1 = float(np.clip((x1 - pad[0]) / ratio[0], 0, size[0]))
        by1 = float(np.clip((y1 - pad[1]) / ratio[1], 0, size[1]))
        bx2 = float(np.clip((x2 - pad[0]) / ratio[0], 0, size[0]))
        by2 = float(np.clip((y2 - pad[1]) / ratio[1], 0, size[1]))
        if c >= len(category_ids):
            raise GateInputError(
                f"the model predicts class {c} but the annotations have {len(category_ids)} categories"
            )
        results.append(
            {
                "image_id": image_id,
                "category_id": category_ids[c],
                "bbox": [bx1, by1, bx2 - bx1, by2 - by1],
                "score": score,
            }
        )
    return results
