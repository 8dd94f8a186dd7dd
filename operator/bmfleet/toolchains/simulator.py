"""Run a bmodel on TPU-MLIR's simulator over a folder of input batches (one process, model loaded once)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bmfleet.toolchains.common import CompileFailure, tail
from bmfleet.toolchains.tpu_mlir import find_bin_dir, tool_env

RUNNER = Path(__file__).with_name("bmrt_runner.py")
# `import tpu_mlir` sets LD_LIBRARY_PATH, TPUC_ROOT and PYTHONPATH, which only a child process sees at start.
_LAUNCH = "import sys, tpu_mlir; sys.argv = sys.argv[1:]; tpu_mlir.run_subprocess_py(sys.argv[0])"


def run_bmodel(bmodel: Path, in_dir: Path, out_dir: Path, bin_dir: Path | None = None) -> dict[str, Any]:
    """Outputs for every `in_dir/*.npz` batch in `out_dir` (same names); returns the runner's timings
    (seconds: load, forward, total). The file must end in .bmodel: the runtime picks its loader by name."""
    bin_dir = bin_dir or find_bin_dir()
    proc = subprocess.run(
        [str(bin_dir / "python"), "-c", _LAUNCH, str(RUNNER), str(bmodel), str(in_dir), str(out_dir)],
        capture_output=True,
        text=True,
        check=False,
        env=tool_env(bin_dir),
        cwd=out_dir.parent,
        timeout=24 * 3600,
    )
    if proc.returncode != 0:
        raise CompileFailure("ToolchainCrash", f"the simulator could not run {bmodel.name}", tail(proc.stderr))
    timings: dict[str, Any] = json.loads((out_dir / "_timings.json").read_text())
    return timings
