"""TPU-MLIR: compile one stage (one set of input shapes) to a bmodel with SOPHGO's open compiler.

    model_transform  -> <net>.mlir (+ the original framework's outputs on the test input: the reference)
    run_calibration  -> <net>_cali_table                (INT8 only)
    model_deploy     -> compilation.bmodel              (and its own check against the reference)

Every stage of a build is compiled with the same `--model_name` (the net name), so the per-shape bmodels
combine into one net with several stages (`model_tool --combine`, largest batch first; BM1684 files need
`model_tool --refresh` before combining: see docs/reference/tpu-mlir-on-cpu.md).

The tools run from TPU-MLIR's own Python 3.10 environment: its bin dir comes from `$BMFLEET_TPU_MLIR_BIN`,
else from running `hack/setup-tpu-mlir.sh` (which creates it once). The command-line builders are pure
functions; `compile_stage` runs them in a work dir and returns a `CompileResult` or raises `CompileFailure`.

Request fields and their TPU-MLIR equivalents:
- precision FP32/FP16/BF16/INT8 -> `--quantize F32/F16/BF16/INT8`; chip -> `--chip bm1684|bm1684x`;
- opt 0/1/2 (bmnetu's levels) -> `--disable_layer_group` / `--opt 1` / `--opt 2`: model_deploy's `--opt`
  (1, 2, 3; default 2) picks the layer-group search, so bmnetu's default 2 maps to TPU-MLIR's default 2,
  1 to the simple grouping, and 0 (no optimisation) to no layer grouping at all;
- dyn -> model_deploy `--dynamic`; cmp -> model_deploy's own check (`--test_input`, `--test_reference`,
  `--tolerance`), or `--skip_validation` when cmp is false;
- mean, scale, pixel_format, channel_format, keep_aspect_ratio -> model_transform's options of the same name;
- calibration_dataset, calibration_samples -> run_calibration `--dataset`, `--input_num`;
- max_n and mode have no TPU-MLIR equivalent (mode GenUmodel is refused as BadInput).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bmfleet.api.shapes import StageShapes
from bmfleet.toolchains.common import (
    CompileFailure,
    CompileResult,
    StageRequest,
    StepRecord,
    failure_for,
    result_for,
    run_logged,
    tail,
)

TPU_MLIR_VERSION = "1.30.2"
BIN_ENV = "BMFLEET_TPU_MLIR_BIN"
OUTPUT_NAME = "compilation.bmodel"
QUANTIZE = {"FP32": "F32", "FP16": "F16", "BF16": "BF16", "INT8": "INT8"}
CHIPS = {"BM1684": "bm1684", "BM1684X": "bm1684x"}
SETUP_SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "setup-tpu-mlir.sh"
TEST_SEED = 1234


@dataclass(frozen=True)
class Tolerance:
    """model_deploy's `--tolerance`: minimum cosine and euclidean similarity against the reference."""

    cosine: float
    euclidean: float

    def arg(self) -> str:
        return f"{self.cosine:g},{self.euclidean:g}"


# model_deploy's own defaults per quantisation (tpu_mlir/python/tools/model_deploy.py), made explicit so the
# recorded command line says what was checked.
DEFAULT_TOLERANCE = {
    "F32": Tolerance(0.99, 0.99),
    "F16": Tolerance(0.99, 0.90),
    "BF16": Tolerance(0.99, 0.90),
    "INT8": Tolerance(0.90, 0.80),
}


Check = Literal["reference", "generated"]


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name and numpy dtype."""

    name: str
    dtype: str = "float32"


@dataclass(frozen=True)
class StageFiles:
    """Where one stage's files go inside its work dir."""

    workdir: Path
    net: str

    @property
    def mlir(self) -> Path:
        return self.workdir / f"{self.net}.mlir"

    @property
    def test_input(self) -> Path:
        return self.workdir / f"{self.net}_test_input.npz"

    @property
    def reference(self) -> Path:
        return self.workdir / f"{self.net}_top_outputs.npz"

    @property
    def cali_table(self) -> Path:
        return self.workdir / f"{self.net}_cali_table"

    @property
    def bmodel(self) -> Path:
        return self.workdir / OUTPUT_NAME


def net_name(request: StageRequest) -> str:
    """The net name: the request's, else the model file's stem made a valid identifier. The same for
    every stage of a build, so the stages combine into one net."""
    if request.net_name:
        return request.net_name
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(request.model).stem) or "net"
    return stem if re.match(r"[A-Za-z_]", stem) else f"net_{stem}"


def quantize(precision: str) -> str:
    """model_deploy `--quantize` for a precision."""
    if precision not in QUANTIZE:
        raise CompileFailure("BadInput", f"precision {precision} has no TPU-MLIR quantisation")
    return QUANTIZE[precision]


def chip_arg(chip: str) -> str:
    """model_deploy `--chip` for a chip."""
    if chip not in CHIPS:
        raise CompileFailure("BadInput", f"chip {chip} is not supported (BM1684, BM1684X)")
    return CHIPS[chip]


def shapes_arg(shapes: StageShapes) -> str:
    """model_transform `--input_shapes`: `[[4,3,32,32],[4,10]]`."""
    return "[" + ",".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes) + "]"


def _floats(values: list[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def model_transform_command(
    request: StageRequest, files: StageFiles, bin_dir: Path, inputs: list[InputSpec] | None
) -> list[str]:
    """model_transform for one stage. With `inputs` (cmp on), it also runs the original model on the test
    input and saves its outputs as the reference for model_deploy's check."""
    argv = [
        str(bin_dir / "model_transform"),
        "--model_name", net_name(request),
        "--model_def", request.model,
        "--input_shapes", shapes_arg(request.shapes),
    ]  # fmt: skip
    if request.weights is not None:
        argv += ["--model_data", request.weights]
    if inputs and any(i.dtype != "float32" for i in inputs):
        argv += ["--input_types", ",".join(i.dtype for i in inputs)]
    if request.mean is not None:
        argv += ["--mean", _floats(request.mean)]
    if request.scale is not None:
        argv += ["--scale", _floats(request.scale)]
    if request.pixel_format is not None:
        argv += ["--pixel_format", request.pixel_format]
    if request.channel_format is not None:
        argv += ["--channel_format", request.channel_format]
    if request.keep_aspect_ratio:
        argv.append("--keep_aspect_ratio")
    if inputs:
        argv += ["--test_input", str(files.test_input), "--test_result", str(files.reference)]
    argv += ["--mlir", str(files.mlir)]
    return argv


def run_calibration_command(request: StageRequest, files: StageFiles, bin_dir: Path) -> list[str]:
    """run_calibration for an INT8 stage: the calibration folder and how many samples to use."""
    if request.calibration_dataset is None:
        raise CompileFailure("BadInput", "INT8 with TPU-MLIR needs a calibration dataset (run_calibration)")
    argv = [str(bin_dir / "run_calibration"), str(files.mlir), "--dataset", request.calibration_dataset]
    if request.calibration_samples is not None:
        argv += ["--input_num", str(request.calibration_samples)]
    argv += ["-o", str(files.cali_table)]
    return argv


def opt_args(opt: int) -> list[str]:
    """bmnetu's optimisation level 0/1/2 as model_deploy options (see the module docstring)."""
    if opt == 0:
        return ["--disable_layer_group"]
    if opt in (1, 2):
        return ["--opt", str(opt)]
    raise CompileFailure("BadInput", f"opt must be 0, 1 or 2, not {opt}")


def model_deploy_command(
    request: StageRequest,
    files: StageFiles,
    bin_dir: Path,
    tolerance: Tolerance | None = None,
    check: Check = "reference",
) -> list[str]:
    """model_deploy for one stage: quantise, lower for the chip, write the bmodel and check it.

    `check` (used only when the request's cmp is on): `reference` compares with the outputs of the
    top-level MLIR on our test input, saved by model_transform (which itself checks them against the
    original model run by its framework); `generated` lets model_deploy make a test input from the MLIR's
    declared inputs and compare with the top-level MLIR (for models whose inputs cannot be read here).
    """
    quant = quantize(request.precision)
    argv = [
        str(bin_dir / "model_deploy"),
        "--mlir", str(files.mlir),
        "--quantize", quant,
        "--chip", chip_arg(request.chip),
    ]  # fmt: skip
    if quant == "INT8":
        argv += ["--calibration_table", str(files.cali_table)]
    if request.cmp:
        if check == "reference":
            argv += ["--test_input", str(files.test_input), "--test_reference", str(files.reference)]
        else:
            argv += ["--gen_test_input", "--gen_test_seed", str(TEST_SEED)]
        argv += ["--tolerance", (tolerance or DEFAULT_TOLERANCE[quant]).arg()]
    if request.dyn:
        argv.append("--dynamic")
    argv += opt_args(request.opt)
    argv += ["--model", str(files.bmodel)]
    return argv


def make_test_input(
    inputs: list[InputSpec], shapes: StageShapes, samples: list[dict[str, np.ndarray]], seed: int = TEST_SEED
) -> dict[str, np.ndarray]:
    """The test input of one stage, keyed by input name.

    Calibration samples (one dict per .npz file) are used when they have every input: their first axes are
    concatenated (and repeated if too few) up to the stage's batch, which is how run_calibration batches
    them too. Otherwise seeded random data: standard normal for float inputs, zeros for integer ones.
    """
    if len(inputs) != len(shapes):
        raise CompileFailure("BadInput", f"the model has {len(inputs)} inputs but the stage gives {len(shapes)} shapes")
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec, shape in zip(inputs, shapes, strict=True):
        have = [s[spec.name] for s in samples if spec.name in s]
        if have and all(h.shape[1:] == tuple(shape[1:]) for h in have):
            stacked = np.concatenate(have, axis=0)
            reps = -(-shape[0] // stacked.shape[0])
            arrays[spec.name] = np.concatenate([stacked] * reps, axis=0)[: shape[0]].astype(spec.dtype)
        elif np.issubdtype(np.dtype(spec.dtype), np.floating):
            arrays[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            arrays[spec.name] = np.zeros(shape, dtype=spec.dtype)
    return arrays


def calibration_samples(dataset: str | None, limit: int = 64) -> list[dict[str, np.ndarray]]:
    """Up to `limit` .npz files of a calibration folder, in name order (as run_calibration lists them)."""
    if dataset is None or not Path(dataset).is_dir():
        return []
    samples: list[dict[str, np.ndarray]] = []
    for path in sorted(Path(dataset).glob("*.npz"))[:limit]:
        with np.load(path) as npz:
            samples.append({k: npz[k] for k in npz.files})
    return samples


_ONNX_INPUTS = """
import json, sys, onnx
from onnx import helper
m = onnx.load(sys.argv[1], load_external_data=False)
init = {i.name for i in m.graph.initializer}
print(json.dumps([[i.name, helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name]
                  for i in m.graph.input if i.name not in init]))
"""


def onnx_inputs(bin_dir: Path, model: str) -> list[InputSpec]:
    """The graph inputs of an ONNX model (names and dtypes), read with the onnx inside TPU-MLIR's venv."""
    proc = subprocess.run(
        [str(bin_dir / "python"), "-c", _ONNX_INPUTS, model],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=tool_env(bin_dir),
    )
    if proc.returncode != 0:
        raise CompileFailure("BadInput", f"cannot read the ONNX model {model}", tail(proc.stderr))
    return [InputSpec(name, dtype) for name, dtype in json.loads(proc.stdout.strip().splitlines()[-1])]


def find_bin_dir(setup_script: Path = SETUP_SCRIPT) -> Path:
    """TPU-MLIR's bin dir: `$BMFLEET_TPU_MLIR_BIN`, else the last line `hack/setup-tpu-mlir.sh` prints
    (it creates the environment the first time)."""
    if env := os.environ.get(BIN_ENV):
        return Path(env)
    if not setup_script.is_file():
        raise CompileFailure("ToolchainCrash", f"TPU-MLIR not found: set {BIN_ENV} or provide {setup_script}")
    proc = subprocess.run(["bash", str(setup_script)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise CompileFailure("ToolchainCrash", f"{setup_script} failed (exit {proc.returncode})", tail(proc.stderr))
    return Path(proc.stdout.strip().splitlines()[-1])


def tpu_mlir_version(bin_dir: Path) -> str:
    """The installed tpu_mlir version, from its dist-info folder in the venv next to `bin_dir`."""
    for info in sorted((bin_dir.parent / "lib").glob("python3*/site-packages/tpu_mlir-*.dist-info")):
        return info.name.removeprefix("tpu_mlir-").removesuffix(".dist-info")
    return "unknown"


def tool_env(bin_dir: Path) -> dict[str, str]:
    """The environment of the tools: TPU-MLIR's venv first on PATH (they call each other and tpuc-opt by
    name), and nothing of the caller's Python environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def _check_request(request: StageRequest) -> None:
    if request.mode != "compile":
        raise CompileFailure("BadInput", f"mode {request.mode} exists only for bmnetu")
    if not Path(request.model).is_file():
        raise CompileFailure("BadInput", f"model file {request.model} does not exist")
    quantize(request.precision)
    chip_arg(request.chip)


def _test_inputs(request: StageRequest, bin_dir: Path) -> list[InputSpec] | None:
    """The inputs to build the test input for, or None when the check is off or the inputs are unknown."""
    if not request.cmp:
        return None
    if request.model_format == "onnx":
        return onnx_inputs(bin_dir, request.model)
    samples = calibration_samples(request.calibration_dataset, limit=1)
    return [InputSpec(name, "float32") for name in samples[0]] if samples else None


def compile_stage(
    request: StageRequest,
    workdir: Path,
    *,
    bin_dir: Path | None = None,
    tolerance: Tolerance | None = None,
    timeout: float | None = None,
) -> CompileResult:
    """Compile one stage in `workdir` to `workdir/compilation.bmodel`.

    Each step's output is logged to `workdir/<step>.log`. Raises `CompileFailure` with the reason classified
    from the failing step's log. With cmp on, the test input is built here (from the calibration .npz files,
    else seeded random data) and model_transform saves the top-level MLIR's outputs on it as the reference
    (after checking them against the original model);
    for a model whose inputs cannot be read here (not ONNX, no calibration .npz) model_deploy generates the
    test input itself and compares with the top-level MLIR instead.
    """
    _check_request(request)
    bin_dir = bin_dir or find_bin_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    files = StageFiles(workdir.resolve(), net_name(request))
    files.bmodel.unlink(missing_ok=True)
    inputs = _test_inputs(request, bin_dir)
    if inputs:
        samples = calibration_samples(request.calibration_dataset, limit=max(s[0] for s in request.shapes))
        arrays = make_test_input(inputs, request.shapes, samples)
        np.savez(files.test_input, **arrays)  # type: ignore[arg-type]
    commands = [("model_transform", model_transform_command(request, files, bin_dir, inputs))]
    if quantize(request.precision) == "INT8":
        commands.append(("run_calibration", run_calibration_command(request, files, bin_dir)))
    check: Check = "reference" if inputs else "generated"
    commands.append(("model_deploy", model_deploy_command(request, files, bin_dir, tolerance, check)))
    env = tool_env(bin_dir)
    steps: list[StepRecord] = []
    texts: list[str] = []
    for name, argv in commands:
        step, text = run_logged(name, argv, files.workdir, files.workdir / f"{name}.log", env=env, timeout=timeout)
        steps.append(step)
        texts.append(text)
        if step.returncode != 0:
            raise failure_for(step, text, name)
    if not files.bmodel.is_file():
        raise CompileFailure("ToolchainCrash", f"model_deploy exited 0 but wrote no {files.bmodel}", tail(texts[-1]))
    return result_for(files.bmodel, f"tpu-mlir {tpu_mlir_version(bin_dir)}", steps, "\n".join(texts))
