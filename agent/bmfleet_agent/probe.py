"""Does the newly active model actually load? Decides between keeping it and rolling back.

Best evidence first: a configured probe command (e.g. ``bmrt_test --bmodel {path}``), else the SOPHON runtime
through sophon-sail when it is installed, else the structural check (header, flatbuffer, chip) that is all a
box without the runtime can do. The sha256 was checked before the swap either way.
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
from typing import Any, Callable, Optional

from bmfleet_agent import bmodel

Probe = Callable[[str, str], None]  # (path, device chip) -> None, or raise ProbeError


class ProbeError(Exception):
    """The model did not pass the probe; the message is reported to the gateway."""


def structural_probe(path: str, chip: str) -> None:
    try:
        info = bmodel.read_info(path)
    except (OSError, bmodel.BModelError) as e:
        raise ProbeError(f"structural check: {e}") from e
    if not bmodel.chip_compatible(info.chip, chip):
        raise ProbeError(f"structural check: model is for {info.chip}, device is {chip}")


def _load_sail() -> Optional[Any]:
    try:
        return importlib.import_module("sophon.sail")
    except ImportError:
        return None


def sail_probe(path: str, chip: str, sail: Any, dev_id: int = 0) -> None:
    """Load the model on TPU `dev_id` with sophon-sail and check that it exposes at least one network."""
    structural_probe(path, chip)
    try:
        engine = sail.Engine(path, dev_id, sail.IOMode.SYSIO)
        names = list(engine.get_graph_names())
    except Exception as e:  # any runtime failure means "does not load"
        raise ProbeError(f"sophon.sail could not load the model: {e}") from e
    if not names:
        raise ProbeError("sophon.sail loaded the model but it has no networks")


def command_probe(command: str, timeout: float = 120.0) -> Probe:
    """A probe that runs `command` (``{path}`` is replaced by the model path, else the path is appended)."""

    def run(path: str, chip: str) -> None:
        structural_probe(path, chip)
        argv = [a.replace("{path}", path) for a in shlex.split(command)]
        if "{path}" not in command:
            argv.append(path)
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ProbeError(f"probe command {argv[0]}: {e}") from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-300:]
            raise ProbeError(f"probe command exited {proc.returncode}: {tail}")

    return run


def default_probe(command: str = "") -> Probe:
    if command:
        return command_probe(command)
    sail = _load_sail()
    if sail is not None:
        return lambda path, chip: sail_probe(path, chip, sail)
    return structural_probe
