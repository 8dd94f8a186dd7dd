"""`bmfleet worker compile`: what a compile Job runs. Parse the request the operator wrote, fetch the inputs,
run the toolchain, put the bmodel into the store, and leave a result record (digest, size, toolchain, or the
classified failure) where the kubelet reports it as the pod's termination message."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

from bmfleet.api.shapes import ShapeError, StageShapes, parse_shape_string
from bmfleet.store import StoreError
from bmfleet.toolchains.bmnetu import run_bmnetu
from bmfleet.toolchains.common import CompileFailure, CompileResult
from bmfleet.worker.inputs import InputError, resolve
from bmfleet.worker.storage import open_step_store

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2  # retrying cannot help: the Job's podFailurePolicy fails the Job at once


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
    calibration_sha256: str | None = None
    mean: list[float] | None = None
    scale: list[float] | None = None
    pixel_format: str | None = None
    channel_format: str | None = None
    keep_aspect_ratio: bool = False
    keep_outputs: bool = False
    result: str | None = None
    store: str | None = None
    store_credentials: str | None = None


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
    p.add_argument("--calibration-sha256")
    p.add_argument("--mean", type=_floats)
    p.add_argument("--scale", type=_floats)
    p.add_argument("--pixel-format", choices=["rgb", "bgr", "gray", "rgba"])
    p.add_argument("--channel-format", choices=["nchw", "nhwc"])
    p.add_argument("--keep-aspect-ratio", type=_bool, default=False)
    p.add_argument("--keep-outputs", type=_bool, default=False)
    p.add_argument("--result", help="where to write the JSON result record (the pod's termination message)")
    p.add_argument("--store", help="the artifact store the bmodel is put into (pvc://, file://, oci://, s3://)")
    p.add_argument("--store-credentials", help="the mounted credentials Secret of the store")
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


def _local_request(request: CompileRequest, workdir: Path) -> CompileRequest:
    """The same request with every input URI replaced by a local path (downloaded or mounted)."""
    model = resolve(request.model, workdir, request.model_sha256)
    weights = resolve(request.weights, workdir, request.weights_sha256) if request.weights else None
    calib = (
        resolve(request.calibration_dataset, workdir, request.calibration_sha256)
        if request.calibration_dataset
        else None
    )
    return replace(
        request,
        model=str(model),
        weights=str(weights) if weights else None,
        calibration_dataset=str(calib) if calib else None,
    )


def _run_toolchain(request: CompileRequest, outdir: Path) -> CompileResult:
    if request.toolchain == "bmnetu":
        return run_bmnetu(request, outdir)
    from bmfleet.toolchains import tpu_mlir  # its environment exists only where TPU-MLIR is installed

    return tpu_mlir.compile_stage(request, outdir)


def _store(request: CompileRequest, result: CompileResult) -> dict[str, object]:
    """Put the bmodel into the store when the build has one; the record then carries the blob's URI."""
    if not request.store:
        return {}
    _, uri = open_step_store(request.store, request.store_credentials).put(result.bmodel)
    return {"uri": uri}


def main(argv: list[str]) -> int:
    """Entry point of the compile Job's container: fetch, compile, store, report."""
    request = parse(argv)
    outdir = Path(request.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        result = _run_toolchain(_local_request(request, outdir), outdir)
        record: dict[str, object] = {
            "state": "Succeeded",
            "digest": f"sha256:{result.sha256}",
            "size": result.size,
            "toolchain": result.toolchain,
            "seconds": round(result.seconds, 1),
        }
    except InputError as exc:
        write_result(request.result, {"state": "Failed", "reason": "BadInput", "message": str(exc)})
        return EXIT_BAD_INPUT
    except CompileFailure as exc:
        message = f"{exc.message}\n{exc.log_tail}".strip()[-3000:]
        write_result(request.result, {"state": "Failed", "reason": exc.reason, "message": message})
        return EXIT_BAD_INPUT if exc.reason in ("BadInput", "UnsupportedOperator") else EXIT_FAILED
    try:
        record.update(_store(request, result))
    except (StoreError, ValueError, OSError) as exc:  # the Job retries: the store may be back
        write_result(request.result, {"state": "Failed", "reason": "StoreFailed", "message": str(exc)[:3000]})
        return EXIT_FAILED
    write_result(request.result, record)
    return 0
