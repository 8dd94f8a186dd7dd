"""`bmfleet worker compile`: what a compile Job runs. This release parses and checks the request the
operator wrote; running the toolchain on it is the next release's work (it exits 3 and says so)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bmfleet.api.shapes import ShapeError, StageShapes, parse_shape_string

EXIT_BAD_INPUT = 2
EXIT_NOT_IMPLEMENTED = 3


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


@dataclass(frozen=True)
class CompileRequest:
    """Everything one stage's compile needs; built only from the command line."""

    toolchain: str
    model_format: str
    model: str
    chip: str
    precision: str
    shapes: StageShapes
    opt: int
    dyn: bool
    cmp: bool
    mode: str
    outdir: str
    weights: str | None = None
    model_sha256: str | None = None
    weights_sha256: str | None = None
    net_name: str | None = None
    max_n: int | None = None
    calibration_dataset: str | None = None
    calibration_samples: int | None = None
    mean: list[float] | None = None
    scale: list[float] | None = None
    pixel_format: str | None = None
    channel_format: str | None = None
    keep_aspect_ratio: bool = False
    keep_outputs: bool = False
    result: str | None = None


def parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so tests can check it against the Job builder)."""
    p = argparse.ArgumentParser(prog="bmfleet worker compile", description="Compile one stage to a bmodel.")
    p.add_argument("--toolchain", required=True, choices=["bmnetu", "tpu-mlir"])
    p.add_argument("--model-format", required=True, choices=["umodel", "onnx", "caffe", "torchscript", "tflite"])
    p.add_argument("--model", required=True)
    p.add_argument("--chip", required=True, choices=["BM1684", "BM1684X"])
    p.add_argument("--precision", required=True, choices=["FP32", "FP16", "BF16", "INT8"])
    p.add_argument("--shapes", required=True)
    p.add_argument("--opt", type=int, default=2, choices=[0, 1, 2])
    p.add_argument("--dyn", type=_bool, default=False)
    p.add_argument("--cmp", type=_bool, default=True)
    p.add_argument("--mode", default="compile", choices=["compile", "GenUmodel"])
    p.add_argument("--outdir", required=True)
    p.add_argument("--weights")
    p.add_argument("--model-sha256")
    p.add_argument("--weights-sha256")
    p.add_argument("--net-name")
    p.add_argument("--max-n", type=int)
    p.add_argument("--calibration-dataset")
    p.add_argument("--calibration-samples", type=int)
    p.add_argument("--mean", type=_floats)
    p.add_argument("--scale", type=_floats)
    p.add_argument("--pixel-format", choices=["rgb", "bgr", "gray", "rgba"])
    p.add_argument("--channel-format", choices=["nchw", "nhwc"])
    p.add_argument("--keep-aspect-ratio", type=_bool, default=False)
    p.add_argument("--keep-outputs", type=_bool, default=False)
    p.add_argument("--result", help="where to write the JSON result record (the pod's termination message)")
    return p


def parse(argv: list[str]) -> CompileRequest:
    """Parse and check a compile request; raises SystemExit(2) with a message on bad input."""
    ns = parser().parse_args(argv)
    values = vars(ns)
    try:
        values["shapes"] = parse_shape_string(ns.shapes)
    except ShapeError as exc:
        parser().error(f"--shapes: {exc}")
    return CompileRequest(**values)


def write_result(path: str | None, record: dict[str, object]) -> None:
    """The result record the operator reads from the pod's termination message (kept under 4 KiB)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    if path:
        Path(path).write_text(text[:4096])
    print(text)


def main(argv: list[str]) -> int:
    """Entry point of the compile Job's container."""
    request = parse(argv)
    print(json.dumps({"request": asdict(request)}, sort_keys=True))
    message = "running the toolchain is not implemented in this release (the request was parsed and checked)"
    print(f"bmfleet worker compile: {message}", file=sys.stderr)
    write_result(request.result, {"state": "Failed", "reason": "NotImplemented", "message": message})
    return EXIT_NOT_IMPLEMENTED
