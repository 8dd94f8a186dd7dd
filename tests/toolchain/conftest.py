"""The real-toolchain tier: TPU-MLIR 1.30.2 in its own Python 3.10 environment (hack/setup-tpu-mlir.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bmfleet.toolchains.tpu_mlir import BIN_ENV, SETUP_SCRIPT


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "toolchain: runs the real TPU-MLIR toolchain (its Python 3.10 environment is set up by hack/setup-tpu-mlir.sh)",
    )


@pytest.fixture(scope="session")
def tpu_mlir_bin() -> Path:
    """TPU-MLIR's bin dir: $BMFLEET_TPU_MLIR_BIN, else created by hack/setup-tpu-mlir.sh (once; minutes the
    first time). Skips the tier, with the script's own explanation, only if the environment cannot be made."""
    if env := os.environ.get(BIN_ENV):
        return Path(env)
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        last = "\n".join(proc.stderr.strip().splitlines()[-5:])
        pytest.skip(
            f"the TPU-MLIR environment could not be created ({SETUP_SCRIPT.name} exit {proc.returncode}): {last}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])
