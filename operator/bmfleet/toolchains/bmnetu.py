"""bmnetu, the SOPHON SDK's BM1684 compiler for UFW umodels (the seed's tool).

`bmnetu_command` builds the command line exactly from the seed's table (docs: seed-notes.md), in the
seed's order, with the two extra flags of the SDK example (`-max_n`, `-target`) at the end:

    bmnetu -model=<prototxt> -weight=<umodel> -shapes=[x,x,x,x],[x,x] -net_name=<name> -opt=<0|1|2>
           -dyn=<0|1> -prec=<FP32|INT8> -outdir=<dir> -cmp=<0|1> -mode=<compile|GenUmodel>
           -max_n=<n> -target=BM1684

Booleans are written `0`/`1`: the table only says `<bool>`, and the one verbatim invocation the SDK gives
(`... -prec=INT8 -dyn=0 -cmp=1 -target=BM1684 ...`) uses 0/1, which every gflags version parses. Optional
flags whose request field is None (`-net_name`, `-max_n`) are left out so bmnetu applies its own default
(the prototxt's name; the batch of -shapes). `-opt`, `-dyn`, `-cmp`, `-mode` are always given because the
request always carries a value (their CRD defaults equal bmnetu's).

bmnetu is not public; the runner is tested against `tests/doubles/fake_bmnetu.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from bmfleet.api.shapes import format_shapes
from bmfleet.toolchains.common import (
    CompileFailure,
    CompileResult,
    StageRequest,
    failure_for,
    result_for,
    run_logged,
    tail,
)

BMNETU_ENV = "BMFLEET_BMNETU"
OUTPUT_NAME = "compilation.bmodel"
BMNETU_PRECISIONS = ("FP32", "INT8")
BMNETU_TARGETS = ("BM1684",)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def bmnetu_command(request: StageRequest, outdir: Path, binary: str = "bmnetu") -> list[str]:
    """The bmnetu command line for one stage. Raises `CompileFailure("BadInput")` for a request bmnetu
    cannot take (no weights, a precision other than FP32/INT8, a chip other than BM1684)."""
    if request.weights is None:
        raise CompileFailure("BadInput", "bmnetu needs -weight: the request has no weights (the .umodel)")
    if request.precision not in BMNETU_PRECISIONS:
        raise CompileFailure("BadInput", f"bmnetu -prec takes FP32 or INT8, not {request.precision}")
    if request.chip not in BMNETU_TARGETS:
        raise CompileFailure("BadInput", f"bmnetu targets BM1684 only, not {request.chip}")
    argv = [
        binary,
        f"-model={request.model}",
        f"-weight={request.weights}",
        f"-shapes={format_shapes(request.shapes)}",
    ]
    if request.net_name is not None:
        argv.append(f"-net_name={request.net_name}")
    argv += [
        f"-opt={request.opt}",
        f"-dyn={_flag(request.dyn)}",
        f"-prec={request.precision}",
        f"-outdir={outdir}",
        f"-cmp={_flag(request.cmp)}",
        f"-mode={request.mode}",
    ]
    if request.max_n is not None:
        argv.append(f"-max_n={request.max_n}")
    argv.append(f"-target={request.chip}")
    return argv


def find_bmnetu() -> str:
    """The bmnetu binary: `$BMFLEET_BMNETU`, else `bmnetu` on PATH."""
    binary = os.environ.get(BMNETU_ENV) or shutil.which("bmnetu")
    if not binary:
        raise CompileFailure(
            "ToolchainCrash", f"bmnetu not found: set {BMNETU_ENV} or put bmnetu on PATH (the SOPHON SDK image)"
        )
    return binary


def bmnetu_version(binary: str) -> str:
    """The version gflags prints for `--version` (e.g. "2.7.0"), or "unknown"."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"\b(\d+\.\d+(?:\.\d+)?\S*)", out)
    return match.group(1) if match else "unknown"


def run_bmnetu(request: StageRequest, outdir: Path, timeout: float | None = None) -> CompileResult:
    """Compile one stage with bmnetu into `outdir/compilation.bmodel`; the log is `outdir/bmnetu.log`.

    Raises `CompileFailure` with the reason classified from the log. Only `mode=compile` is run: where
    `GenUmodel` writes its umodel has not been seen from a real bmnetu, so it is refused as BadInput.
    """
    if request.mode != "compile":
        raise CompileFailure("BadInput", f"bmnetu -mode={request.mode}: only -mode=compile is supported by the worker")
    binary = find_bmnetu()
    argv = bmnetu_command(request, outdir, binary)
    outdir.mkdir(parents=True, exist_ok=True)
    bmodel = outdir / OUTPUT_NAME
    bmodel.unlink(missing_ok=True)
    step, log_text = run_logged("bmnetu", argv, outdir, outdir / "bmnetu.log", timeout=timeout)
    if step.returncode != 0:
        raise failure_for(step, log_text, "bmnetu")
    if not bmodel.is_file():
        raise CompileFailure("ToolchainCrash", f"bmnetu exited 0 but wrote no {bmodel}", tail(log_text))
    return result_for(bmodel, f"bmnetu {bmnetu_version(binary)}", [step], log_text)
