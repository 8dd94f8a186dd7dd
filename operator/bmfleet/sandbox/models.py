"""Small real ONNX models built with the `onnx` package, and calibration data for them.

The models are written with IR version 8 and opset 13 so that the onnx 1.14 inside TPU-MLIR 1.30.2's
environment reads them (the main venv's onnx would otherwise stamp a newer IR version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "output"
IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


def _conv(rng: np.random.Generator, name: str, cin: int, cout: int) -> list[onnx.TensorProto]:
    fan_in = cin * 9
    weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(cout, cin, 3, 3)).astype(np.float32)
    bias = rng.normal(0.0, 0.05, size=(cout,)).astype(np.float32)
    return [numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def classifier_model(seed: int = 0) -> onnx.ModelProto:
    """A tiny image classifier: 3 x (3x3 conv + relu), 2 max pools, global average pool, flatten, gemm.

    Input `input` [batch,3,32,32] with a symbolic batch, output `output` [batch,10]. Weights are drawn
    from a seeded RNG, so the same seed gives a byte-identical model.
    """
    rng = np.random.default_rng(seed)
    inits = _conv(rng, "conv1", 3, 8) + _conv(rng, "conv2", 8, 16) + _conv(rng, "conv3", 16, 32)
    fc_w = rng.normal(0.0, np.sqrt(1.0 / 32), size=(NUM_CLASSES, 32)).astype(np.float32)
    fc_b = rng.normal(0.0, 0.05, size=(NUM_CLASSES,)).astype(np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b")]
    conv: dict[str, Any] = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
    pool: dict[str, Any] = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "conv1_w", "conv1_b"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", **pool),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", **pool),
        helper.make_node("Conv", ["p2", "conv3_w", "conv3_b"], ["c3"], name="conv3", **conv),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], [OUTPUT_NAME], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *IMAGE_SHAPE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        initializer=inits,
    )
    return helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bmfleet-tests"
    )


def write_classifier(path: Path, seed: int = 0) -> Path:
    """Write `classifier_model(seed)` to `path` (checked with the full ONNX checker first)."""
    return _save(classifier_model(seed), path)


def unsupported_op_model() -> onnx.ModelProto:
    """A valid ONNX model that TPU-MLIR's ONNX front end rejects: a conv followed by `Det` (matrix
    determinant, opset 11), which has no TPU-MLIR converter. Input `input` [1,3,4,4], output [1,3]."""
    rng = np.random.default_rng(1)
    inits = _conv(rng, "conv1", 3, 3)
    nodes = [
        helper.make_node(
            "Conv", [INPUT_NAME, "conv1_w", "conv1_b"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Det", ["c1"], [OUTPUT_NAME], name="det"),
    ]
    graph = helper.make_graph(
        nodes,
        "det_net",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )
    return helper.make_model(
        graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bmfleet-tests"
    )


def write_unsupported(path: Path) -> Path:
    """Write `unsupported_op_model()` to `path`."""
    return _save(unsupported_op_model(), path)


def sample_inputs(count: int, batch: int = 1, seed: int = 100) -> np.ndarray:
    """Image-like inputs for the classifier: `count` x [batch,3,32,32] float32 in [0, 1) with some spatial
    structure (smooth gradients plus noise), so activations resemble real images more than white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, IMAGE_SHAPE[1]), np.linspace(0, 1, IMAGE_SHAPE[2]), indexing="ij")
    out = np.empty((count, batch, *IMAGE_SHAPE), dtype=np.float32)
    for i in range(count):
        for b in range(batch):
            a, c = rng.uniform(-1, 1, size=(IMAGE_SHAPE[0], 2)).T
            base = 0.5 + 0.25 * (a[:, None, None] * yy + c[:, None, None] * xx)
            out[i, b] = np.clip(base + rng.normal(0, 0.1, size=IMAGE_SHAPE), 0, 1)
    return out


def write_calibration_dir(directory: Path, count: int = 8, seed: int = 100) -> Path:
    """A calibration folder for run_calibration: `count` .npz files, each `{"input": [1,3,32,32]}`."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(sample_inputs(count, 1, seed)):
        np.savez(directory / f"sample_{i:03d}.npz", **{INPUT_NAME: sample})
    return directory


def write_input_npz(path: Path, batch: int, seed: int = 7) -> np.ndarray:
    """One input file for model_runner, `{"input": [batch,3,32,32]}`; returns the array."""
    data: np.ndarray = sample_inputs(1, batch, seed)[0]
    arrays: dict[str, Any] = {INPUT_NAME: data}
    np.savez(path, **arrays)
    return data
