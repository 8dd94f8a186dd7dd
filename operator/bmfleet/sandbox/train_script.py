"""Train the sandbox's small real models on synthetic, learnable data. Runs under TPU-MLIR's Python 3.10 venv:

    python train_script.py classifier|detector OUT_DIR --seed N [--train N] [--test N] [--epochs N] [--data-only]

Why a script: the operator's venv has no torch and TPU-MLIR's has (with numpy and Pillow), so
bmfleet.sandbox.trained runs this file there as a subprocess. It imports nothing from bmfleet and torch only
inside functions, so mypy and ruff check it on the 3.11 side too.

OUT_DIR gets train/ and test/ datasets (PNG images; classification: labels.txt `images/<name>.png <label>` and
classes.txt; detection: COCO annotations.json), model.onnx (opset 13, batch axis "N"), calibration/ (32 .npz of
preprocessed train inputs) and, written last, trained.json (read back by bmfleet.sandbox.trained). Every image
has its own RNG seeded by (seed, split, index): a smaller split is a prefix of a larger one, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

MARKER = "trained.json"
MEAN, SCALE = 127.5, 1 / 127.5
SPLITS = {"train": 0, "test": 1}
SHAPES = ("circle", "square", "triangle", "cross", "ring")
COLORS = {"red": (215, 45, 40), "blue": (40, 70, 215)}
CLS_CLASSES = [f"{c}_{s}" for c in COLORS for s in SHAPES]
DET_CLASSES = (("red_square", "square", (215, 45, 40)), ("green_circle", "circle", (40, 185, 60)),
               ("blue_triangle", "triangle", (40, 70, 215)))  # fmt: skip
ANCHORS = ((8.0, 8.0), (16.0, 16.0), (32.0, 32.0))
STRIDE = 8
Box = tuple[int, int, int, int]


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], index])


def _canvas(rng: np.random.Generator, size: int) -> Image.Image:
    """A random colour gradient with a few clutter lines: the objects must be told from it."""
    base, ramp = rng.uniform(30, 225, 3), rng.uniform(-45, 45, (2, 3))
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    pixels = base + yy[..., None] * ramp[0] + xx[..., None] * ramp[1]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):
        draw.line([int(v) for v in rng.integers(0, size, 4)], fill=_rgb(rng.integers(0, 256, 3)), width=1)
    return img


def _rgb(values: Any) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(values, 0, 255))
    return r, g, b


def _finish(rng: np.random.Generator, img: Image.Image, sigma: float = 8.0) -> np.ndarray:
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, sigma, (img.height, img.width, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: Box, color: tuple[int, int, int]) -> None:
    """Draw `shape` filling the inclusive pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=color)
    elif shape == "cross":
        t, cx, cy = max(1, (x1 - x0) // 6), (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((x0, cy - t, x1, cy + t), fill=color)
        draw.rectangle((cx - t, y0, cx + t, y1), fill=color)
    else:
        draw.ellipse(box, outline=color, width=max(2, (x1 - x0) // 5))


def classification_sample(seed: int, split: str, index: int) -> tuple[np.ndarray, int]:
    """32x32: one shape (5 kinds) in one colour family (red, blue), random size and place: 10 balanced classes."""
    rng, label = _rng(seed, split, index), index % len(CLS_CLASSES)
    color, shape = divmod(label, len(SHAPES))
    img = _canvas(rng, 32)
    side = int(rng.integers(10, 25))
    x0, y0 = (int(v) for v in rng.integers(0, 32 - side + 1, 2))
    rgb = _rgb(np.array(list(COLORS.values())[color]) + rng.integers(-35, 36, 3))
    _draw(ImageDraw.Draw(img), SHAPES[shape], (x0, y0, x0 + side - 1, y0 + side - 1), rgb)
    return _finish(rng, img), label


def _apart(a: list[int], b: list[int]) -> bool:
    """No shared pixel (a later shape would hide part of an earlier one)."""
    return a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]


def detection_sample(seed: int, split: str, index: int) -> tuple[np.ndarray, list[tuple[int, list[int]]]]:
    """64x64 with 0-4 objects (class index, COCO box [x, y, w, h]), sides 6-44 px: small and medium ones."""
    rng = _rng(seed, split, index)
    img = _canvas(rng, 64)
    draw, objects = ImageDraw.Draw(img), list[tuple[int, list[int]]]()
    for _ in range(int(rng.integers(0, 5))):
        w = int(rng.integers(6, 41))
        h = int(np.clip(round(w * rng.uniform(0.75, 1.33)), 6, 44))
        x, y, cls = int(rng.integers(0, 65 - w)), int(rng.integers(0, 65 - h)), int(rng.integers(0, 3))
        color = _rgb(np.array(DET_CLASSES[cls][2]) + rng.integers(-35, 36, 3))
        if all(_apart([x, y, w, h], box) for _, box in objects):
            _draw(draw, DET_CLASSES[cls][1], (x, y, x + w - 1, y + h - 1), color)
            objects.append((cls, [x, y, w, h]))
    return _finish(rng, img), objects


def write_classification(directory: Path, seed: int, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    (directory / "images").mkdir(parents=True, exist_ok=True)
    pixels, labels, lines = np.empty((count, 32, 32, 3), np.uint8), np.empty(count, np.int64), []
    for i in range(count):
        pixels[i], labels[i] = classification_sample(seed, split, i)
        name = f"images/{split}_{i:05d}.png"
        Image.fromarray(pixels[i], "RGB").save(directory / name)
        lines.append(f"{name} {labels[i]}\n")
    (directory / "labels.txt").write_text("".join(lines))
    (directory / "classes.txt").write_text("".join(f"{c}\n" for c in CLS_CLASSES))
    return pixels, labels


def write_detection(directory: Path, seed: int, split: str, count: int) -> tuple[np.ndarray, list[Any]]:
    (directory / "images").mkdir(parents=True, exist_ok=True)
    pixels, targets = np.empty((count, 64, 64, 3), np.uint8), []
    images, annotations = list[dict[str, Any]](), list[dict[str, Any]]()
    for i in range(count):
        pixels[i], objects = detection_sample(seed, split, i)
        name = f"{split}_{i:05d}.png"
        Image.fromarray(pixels[i], "RGB").save(directory / "images" / name)
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 64})
        for cls, box in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
        targets.append(objects)
    categories = [{"id": k + 1, "name": name} for k, (name, _, _) in enumerate(DET_CLASSES)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (directory / "annotations.json").write_text(json.dumps(doc, indent=1) + "\n")
    return pixels, targets


def _torch(seed: int) -> Any:
    import torch  # type: ignore[import-not-found,unused-ignore]

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    return torch


def _inputs(torch: Any, pixels: np.ndarray) -> Any:
    """uint8 NHWC pixels -> the models' float NCHW input, (x - 127.5) / 127.5."""
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - MEAN) * SCALE


def _block(nn: Any, cin: int, cout: int, stride: int = 1) -> list[Any]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _fit(torch: Any, model: Any, count: int, epochs: int, batch: int, step: Any) -> float:
    """AdamW with a one-cycle schedule over shuffled batches; `step(indices)` returns the loss."""
    steps = (count + batch - 1) // batch
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * steps, pct_start=0.15)
    model.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        for idx in torch.randperm(count).split(batch):
            loss = step(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return float(loss.detach())


def train_classifier(torch: Any, pixels: np.ndarray, labels: Any, epochs: int) -> tuple[Any, dict[str, Any]]:
    nn = torch.nn
    model = nn.Sequential(*_block(nn, 3, 16), nn.MaxPool2d(2), *_block(nn, 16, 32), nn.MaxPool2d(2),
                          *_block(nn, 32, 64), nn.MaxPool2d(2), *_block(nn, 64, 64),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(CLS_CLASSES)))  # fmt: skip
    x, y = _inputs(torch, pixels), torch.from_numpy(labels)

    def step(idx: Any) -> Any:
        xb = x[idx]
        flip = torch.rand(len(idx)) < 0.5  # every class is mirror-symmetric
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        return nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=0.05)

    loss = _fit(torch, model, len(x), epochs, 64, step)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    return model, {"finalLoss": loss, "trainTop1": accuracy}


def _targets(objects: list[list[tuple[int, list[int]]]]) -> np.ndarray:
    """One row per box: image, anchor, grid y, grid x, cx, cy, w, h, class; the anchor nearest in w/h ratio."""
    anchors, rows = np.array(ANCHORS), []
    for i, boxes in enumerate(objects):
        for cls, (x, y, w, h) in boxes:
            ratio = np.array([w, h]) / anchors
            a = int(np.maximum(ratio, 1 / ratio).max(1).argmin())
            cx, cy = x + w / 2, y + h / 2
            rows.append([i, a, int(cy // STRIDE), int(cx // STRIDE), cx, cy, w, h, cls])
    return np.array(rows, np.float32).reshape(-1, 9)


def _giou(torch: Any, p: Any, t: Any) -> Any:
    """GIoU of (cx, cy, w, h) boxes, row by row."""
    p1, p2, t1, t2 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2, t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(1)
    union = p[:, 2:].prod(1) + t[:, 2:].prod(1) - inter + 1e-7
    hull = (torch.max(p2, t2) - torch.min(p1, t1)).prod(1) + 1e-7
    return inter / union - (hull - union) / hull


def train_detector(torch: Any, pixels: np.ndarray, objects: Any, epochs: int) -> tuple[Any, dict[str, Any]]:
    nn, na, nc = torch.nn, len(ANCHORS), len(DET_CLASSES)
    head = nn.Conv2d(64, na * (5 + nc), 1)
    model = nn.Sequential(*_block(nn, 3, 16, 2), *_block(nn, 16, 32, 2), *_block(nn, 32, 32),
                          *_block(nn, 32, 64, 2), *_block(nn, 64, 64), head)  # fmt: skip
    with torch.no_grad():  # start from "nothing here" so the objectness loss does not swamp the rest
        head.bias.view(na, 5 + nc)[:, 4] = -4.0
    x, rows, anchors = _inputs(torch, pixels), torch.from_numpy(_targets(objects)), torch.tensor(ANCHORS)
    g = pixels.shape[1] // STRIDE

    def step(idx: Any) -> Any:
        p = model(x[idx]).view(len(idx), na, 5 + nc, g, g).permute(0, 1, 3, 4, 2)
        remap = torch.full((len(x),), -1, dtype=torch.long)
        remap[idx] = torch.arange(len(idx))
        t = rows[remap[rows[:, 0].long()] >= 0]
        b, a, gy, gx = remap[t[:, 0].long()], t[:, 1].long(), t[:, 2].long(), t[:, 3].long()
        s = p[b, a, gy, gx].sigmoid()
        xy = (s[:, :2] * 2 - 0.5 + torch.stack([gx, gy], 1)) * STRIDE
        wh = (s[:, 2:4] * 2) ** 2 * anchors[a]
        giou = _giou(torch, torch.cat([xy, wh], 1), t[:, 4:8])
        obj = torch.zeros(p.shape[:4])
        obj[b, a, gy, gx] = giou.detach().clamp(min=0)
        bce = nn.functional.binary_cross_entropy_with_logits
        lobj = bce(p[..., 4], obj)
        if len(t) == 0:
            return lobj * 20
        lcls = bce(p[b, a, gy, gx][:, 5:], nn.functional.one_hot(t[:, 8].long(), nc).float())
        return (1 - giou).mean() + 0.5 * lcls + 20 * lobj

    loss = _fit(torch, model, len(x), epochs, 32, step)
    return model, {"finalLoss": loss}


def _export(torch: Any, model: Any, path: Path, names: tuple[str, str], shape: tuple[int, ...]) -> None:
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated; the dynamo one needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), str(path), input_names=[names[0]],
                          output_names=[names[1]], opset_version=13, dynamo=False,
                          dynamic_axes={names[0]: {0: "N"}, names[1]: {0: "N"}})  # fmt: skip


def write_calibration(directory: Path, pixels: np.ndarray, input_name: str, count: int = 32) -> None:
    """`count` train inputs spread over the split, preprocessed, one [1,3,H,W] float32 .npz each."""
    directory.mkdir(parents=True, exist_ok=True)
    for n, i in enumerate(np.linspace(0, len(pixels) - 1, count).astype(int)):
        data = ((pixels[i : i + 1].transpose(0, 3, 1, 2).astype(np.float32) - MEAN) * SCALE).astype(np.float32)
        arrays: dict[str, Any] = {input_name: data}
        np.savez(directory / f"sample_{n:03d}.npz", **arrays)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=["classifier", "detector"])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=None, help="train images (3000 / 2000)")
    parser.add_argument("--test", type=int, default=None, help="test images (300 / 200)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (8 / 12)")
    parser.add_argument("--data-only", action="store_true", help="write the datasets only")
    args = parser.parse_args(argv)
    classifier, out, started = args.kind == "classifier", args.out_dir, time.monotonic()
    write = write_classification if classifier else write_detection
    n_train, n_test = args.train or (3000 if classifier else 2000), args.test or (300 if classifier else 200)
    pixels, targets = write(out / "train", args.seed, "train", n_train)
    write(out / "test", args.seed, "test", n_test)
    if args.data_only:
        return
    data_seconds, torch = time.monotonic() - started, _torch(args.seed)
    epochs = args.epochs or (8 if classifier else 12)
    trainer = train_classifier if classifier else train_detector
    model, metrics = trainer(torch, pixels, targets, epochs)
    names, shape = (("input", "logits") if classifier else ("images", "head")), (3, *pixels.shape[1:3])
    _export(torch, model, out / "model.onnx", names, shape)
    write_calibration(out / "calibration", pixels, names[0])
    anchors = [list(a) for a in ANCHORS]
    decode = None if classifier else {
        "type": "yolo", "anchors": anchors, "strides": [STRIDE], "numClasses": len(DET_CLASSES),
        "layout": "per anchor a: channels a*(5+C) .. : tx, ty, tw, th, obj, cls0..clsC-1 (raw logits)",
        "nms": {"iouThreshold": 0.45, "scoreThreshold": 0.001, "maxDetections": 100},
    }  # fmt: skip
    marker = {
        "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "kind": args.kind, "seed": args.seed, "train": n_train, "test": n_test, "epochs": epochs,
        "onnx": "model.onnx", "inputName": names[0], "outputName": names[1], "inputShape": list(shape),
        "trainDir": "train", "testDir": "test", "calibrationDir": "calibration",
        "classNames": CLS_CLASSES if classifier else [c[0] for c in DET_CLASSES],
        "preprocess": {"mean": [MEAN] * 3, "scale": [SCALE] * 3, "channelOrder": "rgb", "layout": "nchw",
                       "resize": list(shape[1:])},
        "decode": decode,
        "metrics": {**metrics, "dataSeconds": round(data_seconds, 1),
                    "trainSeconds": round(time.monotonic() - started - data_seconds, 1)},
    }  # fmt: skip
    (out / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


if __name__ == "__main__":
    main()
