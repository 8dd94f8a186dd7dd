"""Small real models trained on synthetic but learnable data, so precision gates measure something real.

`train_classifier` / `train_detector` run train_script.py under TPU-MLIR's Python 3.10 (it has torch, this venv
has not) and return a `TrainedModel` read back from the result's trained.json. A complete result in `out_dir`
is reused; `cached_models_dir()` keys a cache under $BMFLEET_CACHE on the script's content, so a test session
(and CI on the same machine) trains each model once. A lock file serialises concurrent callers.

Both models take RGB pixels 0..255, preprocessed outside the model as (x - 127.5) / 127.5, NCHW float32.

Classifier: input "input" [N,3,32,32], output "logits" [N,10] (classes.txt order: red_/blue_ x circle, square,
triangle, cross, ring). Datasets: DIR/images/<name>.png, DIR/labels.txt lines `images/<name>.png <label>`,
DIR/classes.txt.

Detector: input "images" [N,3,64,64], output "head" [N, A*(5+C), 8, 8] raw logits, stride 8, C=3 classes
(red_square, green_circle, blue_triangle), A=3 anchors [8,8], [16,16], [32,32] ([w, h] input pixels).
Datasets: DIR/images/<name>.png and COCO DIR/annotations.json (category ids 1..C in class order, file_name
relative to DIR/images, bbox [x, y, w, h] pixels). Decoding: channel a*(5+C)+k of anchor a holds
k = tx, ty, tw, th, obj, cls0..cls(C-1); with s = sigmoid, at grid cell (grid_x, grid_y):
    cx = (s(tx)*2 - 0.5 + grid_x) * stride      cy = (s(ty)*2 - 0.5 + grid_y) * stride
    w = (s(tw)*2)**2 * anchor_w                  h = (s(th)*2)**2 * anchor_h
    score_c = s(obj) * s(cls_c)
then per-class NMS at IoU 0.45 over boxes with score >= 0.001, keeping the 100 best per image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT = Path(__file__).with_name("train_script.py")
MARKER = "trained.json"
REPO = Path(__file__).resolve().parents[3]
TIMEOUT = 1800


@dataclass(frozen=True)
class TrainedModel:
    """A trained ONNX model with its datasets, calibration folder and how to feed and read it."""

    kind: str
    onnx: Path
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]
    train_dir: Path
    test_dir: Path
    calibration_dir: Path
    class_names: tuple[str, ...]
    preprocess: dict[str, Any]
    decode: dict[str, Any] | None
    metrics: dict[str, Any]

    @property
    def gate_decode(self) -> dict[str, Any] | None:
        """The decode as the Build API's `gates.detection.decode` (camelCase wire form)."""
        if self.decode is None:
            return None
        head = {"output": self.output_name, "stride": self.decode["strides"][0], "anchors": self.decode["anchors"]}
        return {"type": "yolo", "heads": [head], "numClasses": self.decode["numClasses"]}

    @property
    def gate_nms(self) -> dict[str, Any] | None:
        """The NMS settings as the Build API's `gates.detection.nms`."""
        return None if self.decode is None else dict(self.decode["nms"])


def script_hash() -> str:
    """sha256 of train_script.py: a changed script (data, model or training) invalidates cached results."""
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()


def cached_models_dir() -> Path:
    """$BMFLEET_CACHE/trained-models/<script hash> (BMFLEET_CACHE defaults to the repo's .cache)."""
    return REPO / os.environ.get("BMFLEET_CACHE", ".cache") / "trained-models" / script_hash()[:16]


def load(out_dir: Path, kind: str | None = None, seed: int | None = None) -> TrainedModel | None:
    """The result in `out_dir` if it is complete, made by this script version (and of `kind`/`seed`)."""
    try:
        doc = json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("script") != script_hash() or kind not in (None, doc["kind"]) or seed not in (None, doc["seed"]):
        return None
    c, h, w = doc["inputShape"]
    model = TrainedModel(
        kind=doc["kind"],
        onnx=out_dir / doc["onnx"],
        input_name=doc["inputName"],
        output_name=doc["outputName"],
        input_shape=(c, h, w),
        train_dir=out_dir / doc["trainDir"],
        test_dir=out_dir / doc["testDir"],
        calibration_dir=out_dir / doc["calibrationDir"],
        class_names=tuple(doc["classNames"]),
        preprocess=doc["preprocess"],
        decode=doc["decode"],
        metrics=doc["metrics"],
    )
    complete = model.onnx.is_file() and model.train_dir.is_dir() and model.test_dir.is_dir()
    return model if complete and any(model.calibration_dir.glob("*.npz")) else None


def tool_env(python: Path) -> dict[str, str]:
    """The caller's environment without its Python settings, the venv of `python` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    return env


def _train(kind: str, out_dir: Path, python: Path, env: dict[str, str] | None, seed: int) -> TrainedModel:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with (out_dir.parent / f".{out_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (model := load(out_dir, kind, seed)) is not None:
            return model
        (out_dir / MARKER).unlink(missing_ok=True)
        for owned in ("train", "test", "calibration"):  # no stale files of an earlier, larger run
            shutil.rmtree(out_dir / owned, ignore_errors=True)
        argv = [str(python), str(SCRIPT), kind, str(out_dir), "--seed", str(seed)]
        env = env if env is not None else tool_env(python)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"training the {kind} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        if (model := load(out_dir, kind, seed)) is None:
            raise RuntimeError(f"training the {kind} left no complete result in {out_dir}")
        return model


def train_classifier(out_dir: Path, python: Path, env: dict[str, str] | None = None, seed: int = 0) -> TrainedModel:
    """The 10-class 32x32 classifier (about 30 s on 2 cores), or the finished one already in `out_dir`."""
    return _train("classifier", out_dir, python, env, seed)


def train_detector(out_dir: Path, python: Path, env: dict[str, str] | None = None, seed: int = 0) -> TrainedModel:
    """The 3-class 64x64 YOLO-style detector (about 40 s on 2 cores), or the finished one in `out_dir`."""
    return _train("detector", out_dir, python, env, seed)


def write_datasets(out_dir: Path, kind: str, python: Path, seed: int = 0, train: int = 0, test: int = 0) -> Path:
    """Only the train/ and test/ datasets (0: the default sizes); a smaller split is a prefix of a larger one."""
    argv = [str(python), str(SCRIPT), kind, str(out_dir), "--seed", str(seed), "--data-only"]
    argv += [*(["--train", str(train)] if train else []), *(["--test", str(test)] if test else [])]
    subprocess.run(argv, env=tool_env(python), capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return out_dir


def write_constant_calibration(
    directory: Path, input_name: str, shape: tuple[int, ...], value: float = 0.0, count: int = 32
) -> Path:
    """A deliberately bad calibration set: `count` .npz files of one constant input, `shape` (C,H,W) or
    (1,C,H,W), so run_calibration sees no activation range and INT8 precision should collapse."""
    directory.mkdir(parents=True, exist_ok=True)
    sample = np.full((1, *shape) if len(shape) == 3 else shape, value, dtype=np.float32)
    for i in range(count):
        arrays: dict[str, Any] = {input_name: sample}
        np.savez(directory / f"sample_{i:03d}.npz", **arrays)
    return directory
