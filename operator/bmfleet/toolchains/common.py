"""What every toolchain runner shares: the request it reads, the result it returns, the failure it raises
and the classification of a failed run's log into a Kubernetes condition reason.

The runners import only `bmfleet.api` and the standard library, so the compile request is described here
structurally (`StageRequest`); `bmfleet.worker.compile.CompileRequest` satisfies it as it is. Paths in it
must be local files (the worker fetches `model`, `weights` and `calibration_dataset` first and passes a copy
of the request with local paths, e.g. with `dataclasses.replace`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

from bmfleet.api.digests import sha256_file
from bmfleet.api.shapes import StageShapes

FailureReason = Literal["UnsupportedOperator", "ToleranceCheckFailed", "OutOfMemory", "ToolchainCrash", "BadInput"]
REASONS: tuple[FailureReason, ...] = get_args(FailureReason)
LOG_TAIL_LINES = 40


class StageRequest(Protocol):
    """The fields of one stage's compile request that the runners read (see `CompileRequest`)."""

    @property
    def model_format(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def weights(self) -> str | None: ...
    @property
    def chip(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def shapes(self) -> StageShapes: ...
    @property
    def opt(self) -> int: ...
    @property
    def dyn(self) -> bool: ...
    @property
    def cmp(self) -> bool: ...
    @property
    def mode(self) -> str: ...
    @property
    def net_name(self) -> str | None: ...
    @property
    def max_n(self) -> int | None: ...
    @property
    def calibration_dataset(self) -> str | None: ...
    @property
    def calibration_samples(self) -> int | None: ...
    @property
    def mean(self) -> list[float] | None: ...
    @property
    def scale(self) -> list[float] | None: ...
    @property
    def pixel_format(self) -> str | None: ...
    @property
    def channel_format(self) -> str | None: ...
    @property
    def keep_aspect_ratio(self) -> bool: ...


@dataclass(frozen=True)
class StepRecord:
    """One command a runner executed."""

    name: str
    argv: list[str]
    seconds: float
    returncode: int
    log: Path


@dataclass(frozen=True)
class CompileResult:
    """A compiled stage: the bmodel and how it was made (for the artifact's provenance)."""

    bmodel: Path
    sha256: str
    size: int
    toolchain: str  # name and version, e.g. "tpu-mlir 1.30.2"
    commands: list[list[str]]
    seconds: float
    log_tail: str
    steps: list[StepRecord] = field(default_factory=list)


class CompileFailure(Exception):  # noqa: N818 (the name the worker and the docs use)
    """A compile that did not produce a bmodel, with a reason usable as a Kubernetes condition reason."""

    def __init__(self, reason: FailureReason, message: str, log_tail: str = "") -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: FailureReason = reason
        self.message = message
        self.log_tail = log_tail


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log."""
    return "\n".join(text.splitlines()[-lines:])


# Patterns are tried in this order; the first reason with a match wins. Out-of-memory first (a killed
# process may also print a traceback), then the specific compiler verdicts, then bad input; anything else
# that failed is a crash of the toolchain.
_PATTERNS: list[tuple[FailureReason, re.Pattern[str]]] = [
    (
        "OutOfMemory",
        re.compile(
            r"std::bad_alloc|MemoryError|Cannot allocate memory|\bout of memory\b|\bOOM\b|"
            r"failed to allocate|malloc\(\) failed|failed to map segment from shared object|Killed\s*$",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
    (
        "UnsupportedOperator",
        re.compile(
            # TPU-MLIR 1.30.2's front ends (transform/*Converter.py): "Op not support:{'Det'}",
            # "Resize Op not support now", "This mode not support yet: ...", "Unsupported ONNX attribute",
            # "Unsupport opset for ...", "Not supported ActivationFunctionType" (TFLite);
            # bmnetu/bmcompiler: "not supported layer type", "unsupported layer".
            r"Op not support|op(?:erator)?\s+\S+\s+(?:is\s+)?not\s+support|not supported layer|"
            r"not support (?:now|yet)|Unsupported ONNX attribute|Unsupport opset|Not supported ActivationFunction|"
            r"unsupported (?:layer|op\b|operator)|layer type \S+ (?:is )?not (?:supported|implemented)|"
            r"No converter for|not implemented for op",
            re.IGNORECASE,
        ),
    ),
    (
        "ToleranceCheckFailed",
        re.compile(
            # TPU-MLIR's npz_tool compare: "<n> compared, <m> failed" and "npz compare FAILED";
            # bmnetu -cmp: "compare failed" / "cmp ... failed" per layer.
            r"npz compare FAILED|\d+ compared\s*\n?.*?\d+\s+failed|compare failed|"
            r"comparison failed|cmp\w* .*mismatch|Check similarity failed|similarity check failed",
            re.IGNORECASE,
        ),
    ),
    (
        "BadInput",
        re.compile(
            r"No such file or directory|FileNotFoundError|does not exist|Error parsing message|"
            r"InvalidProtobuf|INVALID_PROTOBUF|InvalidGraph|invalid (?:shape|input|model)|"
            r"input_shapes? .*(?:mismatch|not match)|shape mismatch|unknown command line flag|"
            r"illegal value .* for \w+ flag|ERROR: flag '\w+' is missing|cannot be parsed|"
            r"not a valid|BadInput|input shapes error|DecodeError|Protobuf decoding|"
            # model_transform runs the ORIGINAL model on the test input: if that fails, the model and the
            # requested shapes do not fit together (e.g. onnxruntime's "Input channels C is not equal ...").
            r"in origin_inference",
            re.IGNORECASE,
        ),
    ),
]


def classify(log_text: str, returncode: int) -> FailureReason:
    """Why a toolchain run failed, from its log and exit status.

    A run killed by SIGKILL (the kernel's OOM killer; returncode -9, or 137 through a shell) is
    `OutOfMemory` whatever the log says. Otherwise the first matching pattern decides; a failure that
    matches none (a segfault, an assertion, an unexpected traceback) is `ToolchainCrash`.
    """
    if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return "OutOfMemory"
    for reason, pattern in _PATTERNS:
        if pattern.search(log_text):
            return reason
    return "ToolchainCrash"


def run_logged(
    name: str,
    argv: Sequence[str],
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[StepRecord, str]:
    """Run one command with stdout and stderr merged into `log`; return its record and its log text.

    A command that cannot be started or exceeds `timeout` is reported with returncode 127 or 124 (like a
    shell), its explanation appended to the log.
    """
    start = time.monotonic()
    full_env = dict(os.environ if env is None else env)
    with log.open("wb") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        try:
            returncode = subprocess.run(
                list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=full_env, timeout=timeout, check=False
            ).returncode
        except FileNotFoundError as exc:
            out.write(f"\n{name}: cannot start {argv[0]}: {exc}\n".encode())
            returncode = 127
        except subprocess.TimeoutExpired:
            out.write(f"\n{name}: timed out after {timeout} s\n".encode())
            returncode = 124
    record = StepRecord(name, list(argv), round(time.monotonic() - start, 3), returncode, log)
    return record, log.read_text(errors="replace")


def result_for(bmodel: Path, toolchain: str, steps: list[StepRecord], log_text: str) -> CompileResult:
    """The result record of a finished compile."""
    return CompileResult(
        bmodel=bmodel,
        sha256=sha256_file(bmodel),
        size=bmodel.stat().st_size,
        toolchain=toolchain,
        commands=[s.argv for s in steps],
        seconds=round(sum(s.seconds for s in steps), 3),
        log_tail=tail(log_text),
        steps=steps,
    )


def failure_for(step: StepRecord, log_text: str, what: str) -> CompileFailure:
    """The classified failure of a step that exited non-zero."""
    reason = classify(log_text, step.returncode)
    return CompileFailure(reason, f"{what} failed (exit {step.returncode}, log {step.log})", tail(log_text))
