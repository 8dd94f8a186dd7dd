"""Gate datasets as model inputs: labelled images (labels.txt), COCO images, calibration samples; the image
preprocessing of the spec; and a batch plan that exercises every stage of a combined bmodel."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bmfleet.api.build import GatePreprocess
from bmfleet.gates.errors import GateInputError

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Prepared:
    """One image as an input tensor (C,H,W or H,W,C) plus how to map boxes back: original = (box - pad) / ratio."""

    tensor: F32
    ratio: tuple[float, float]  # (x, y) scale applied to the original
    pad: tuple[float, float]  # (x, y) offset added after scaling
    size: tuple[int, int]  # original (width, height)


def preprocess(path: Path, pre: GatePreprocess, hw: tuple[int, int]) -> Prepared:
    """Decode, resize (stretch or letterbox), reorder channels, normalise, lay out."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise GateInputError(f"{path.name}: not a readable image ({exc})") from exc
    w0, h0 = img.size
    h, w = hw
    if pre.letterbox:
        r = min(w / w0, h / h0)
        nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
        canvas = Image.new("RGB", (w, h), (114, 114, 114))
        px, py = (w - nw) // 2, (h - nh) // 2
        canvas.paste(img.resize((nw, nh), Image.Resampling.BILINEAR), (px, py))
        img, ratio, pad = canvas, (r, r), (float(px), float(py))
    else:
        if (w0, h0) != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        ratio, pad = (w / w0, h / h0), (0.0, 0.0)
    x = np.asarray(img, dtype=np.float32)
    if pre.channel_order == "bgr":
        x = x[:, :, ::-1]
    mean = np.asarray(pre.mean or [0.0], dtype=np.float32)
    scale = np.asarray(pre.scale or [1.0], dtype=np.float32)
    x = (x - mean) * scale
    if pre.layout == "nchw":
        x = x.transpose(2, 0, 1)
    return Prepared(np.ascontiguousarray(x, dtype=np.float32), ratio, pad, (w0, h0))


def input_hw(shape: list[int], pre: GatePreprocess) -> tuple[int, int]:
    """(height, width) the images must have for a stage input shape; resize overrides, and must agree."""
    h, w = (shape[2], shape[3]) if pre.layout == "nchw" else (shape[1], shape[2])
    if pre.resize is not None and (pre.resize[0], pre.resize[1]) != (h, w):
        raise GateInputError(
            f"preprocess.resize {pre.resize} does not match the model input {shape} (no stage takes it)"
        )
    return h, w


def classification_set(root: Path, limit: int | None) -> list[tuple[Path, int]]:
    """(image, label) pairs from `labels.txt`: `<path relative to the dataset> <label index>` per line."""
    labels = root / "labels.txt"
    if not labels.is_file():
        raise GateInputError(f"{root}: no labels.txt (lines of `<image path> <label index>`)")
    out = []
    for n, line in enumerate(labels.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise GateInputError(f"labels.txt line {n}: expected `<image path> <label index>`, got {line!r}")
        image = root / parts[0]
        if not image.is_file():
            raise GateInputError(f"labels.txt line {n}: {parts[0]} not found in the dataset")
        out.append((image, int(parts[1])))
    if not out:
        raise GateInputError(f"{labels}: no labelled images")
    return out[:limit] if limit else out


def coco_set(annotations: Path, images: Path, limit: int | None) -> tuple[dict[str, Any], list[tuple[int, Path]]]:
    """The COCO ground truth (limited to the images used) and (image id, path) pairs."""
    try:
        gt = json.loads(annotations.read_text())
    except (OSError, ValueError) as exc:
        raise GateInputError(f"{annotations.name}: not readable COCO JSON ({exc})") from exc
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list):
        raise GateInputError(f"{annotations.name}: COCO annotations need an images list")
    chosen = gt["images"][:limit] if limit else gt["images"]
    pairs = []
    for img in chosen:
        path = images / str(img.get("file_name"))
        if not path.is_file():
            raise GateInputError(f"{img.get('file_name')}: named by {annotations.name} but not in the images folder")
        pairs.append((int(img["id"]), path))
    ids = {i for i, _ in pairs}
    gt = {**gt, "images": chosen, "annotations": [a for a in gt.get("annotations", []) if a.get("image_id") in ids]}
    return gt, pairs


def calibration_samples(root: Path, count: int) -> list[dict[str, F32]]:
    """The first `count` calibration samples (.npz, one tensor per input, batch 1)."""
    files = sorted(root.glob("*.npz")) if root.is_dir() else [root]
    if not files:
        raise GateInputError(f"{root}: no .npz calibration samples to compare on")
    out = []
    for f in files[:count]:
        with np.load(f) as data:
            out.append({k: np.asarray(data[k], dtype=np.float32) for k in data.files})
    return out


def batch_plan(total: int, batches: list[int]) -> list[int]:
    """Batch sizes covering `total` samples so that every stage (batch size) runs when there are more samples
    than its batch: one batch of each smaller stage first, then largest first, the rest padded up to the
    smallest stage that holds it (the caller repeats samples and drops their outputs)."""
    sizes = sorted(set(batches), reverse=True)
    plan, left = [], total
    for b in sizes[1:]:
        if left > b:
            plan.append(b)
            left -= b
    while left > 0:
        b = sizes[0] if left >= sizes[0] else min(s for s in sizes if s >= left)
        plan.append(b)
        left -= b
    return plan
