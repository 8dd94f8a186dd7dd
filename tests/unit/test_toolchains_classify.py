"""classify(): failed toolchain runs to condition reasons, checked on log tails captured from real
TPU-MLIR 1.30.2 runs (trimmed; paths shortened to `.../site-packages`), plus bmnetu-style lines from the
test double (modelled, not captured: bmnetu is not public)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from bmfleet.toolchains.common import (
    LOG_TAIL_LINES,
    REASONS,
    CompileFailure,
    classify,
    failure_for,
    run_logged,
    sha256_file,
    tail,
)

SP = ".../site-packages"
PKG_WARNING = (
    f"{SP}/tpu_mlir/__init__.py:1: UserWarning: pkg_resources is deprecated as an API. See "
    "https://setuptools.pypa.io/en/latest/pkg_resources.html. The pkg_resources package is slated for removal "
    "as early as 2025-11-30. Refrain from using this package or pin to Setuptools<81.\n"
    "  import sys, os, subprocess, pkg_resources\n"
)

# model_transform on an ONNX model with a `Det` node (bmfleet.sandbox.models: unsupported_op_model).
UNSUPPORTED_OP = (
    PKG_WARNING
    + f"""2026/11/26 21:23:24 - INFO : TPU-MLIR v1.30.2-20260831
2026/11/26 21:23:30 - INFO : Onnxsim opt finished
2026/11/26 21:23:30 - INFO : ConstantFolding finished
Traceback (most recent call last):
  File "{SP}/tpu_mlir/python/tools/model_transform.py", line 523, in <module>
    tool.model_transform(args.mlir, args.add_postprocess, args.patterns_count, args.pruning,
  File "{SP}/tpu_mlir/python/tools/model_transform.py", line 74, in model_transform
    self.converter.generate_mlir(mlir_origin)
  File "{SP}/tpu_mlir/python/transform/OnnxConverter.py", line 778, in generate_mlir
    raise RuntimeError("Op not support:{{}}".format(unsupported))
RuntimeError: Op not support:{{'Det'}}
"""
)

# model_deploy INT8 BM1684 with --tolerance 0.99999,0.9999: its own check against the reference fails.
TOLERANCE = f"""[output_Gemm                     ]  NOT_SIMLIAR [FAILED]
    (4, 10) float32
    cosine_similarity      = 0.999832
    euclidean_similarity   = 0.980611
    sqnr_similarity        = 35.602474
1 compared
0 passed
  0 equal, 0 close, 0 similar
1 failed
  0 not equal, 1 not similar
min_similarity = (0.9998323917388916, 0.9806107359332787, 35.602474212646484)
Target    tiny_bm1684_int8_sym_tpu_outputs.npz
Reference /tmp/w/tiny_top_outputs.npz
npz compare FAILED.

Traceback (most recent call last):
  File "{SP}/tpu_mlir/python/tools/model_deploy.py", line 285, in lowering
    self.validate_tpu_mlir()
  File "{SP}/tpu_mlir/python/utils/mlir_shell.py", line 492, in _os_system
    raise RuntimeError("[!Error]: {{}}".format(cmd_str))
RuntimeError: [!Error]: npz_tool.py compare tiny_bm1684_int8_sym_tpu_outputs.npz /tmp/w/tiny_top_outputs.npz \
--tolerance 0.99999,0.9999 --except - -vv
"""

# model_transform with --input_shapes [[4,3,32,32]] given as [[4,3,32]].
WRONG_RANK = f"""  File "{SP}/tpu_mlir/python/transform/OnnxConverter.py", line 674, in input_shape_assign
    check_shape(num_dims, len(input_shapes[idx]))
  File "{SP}/tpu_mlir/python/transform/OnnxConverter.py", line 662, in check_shape
    raise KeyError("input shapes error:{{}}, {{}} vs {{}}".format(input_shapes, l, r))
KeyError: 'input shapes error:[[4, 3, 32]], 4 vs 3'
"""

# model_transform with 4 channels for a 3-channel model: the original model fails on the test input.
WRONG_CHANNELS = f"""[CMD]: model_runner.py --input tiny_in_f32.npz --model /tmp/tt/tiny.onnx \
--output tiny_ref_outputs.npz
2026-11-26 21:24:08.773073181 [E:onnxruntime:, sequential_executor.cc:514 ExecuteKernel] Non-zero status code \
returned while running Conv node. Name:'c1_nchwc' Status Message: Input channels C is not equal to kernel channels \
* group. C: 4 kernel channels: 3 group: 1
Traceback (most recent call last):
  File "{SP}/tpu_mlir/python/tools/model_transform.py", line 139, in model_validate
    ref_outputs = self.origin_inference(inputs)
  File "{SP}/tpu_mlir/python/tools/model_transform.py", line 210, in origin_inference
    return onnx_inference(inputs, self.converter.onnx_file)
onnxruntime.capi.onnxruntime_pybind11_state.Fail: [ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned \
while running Conv node. Name:'c1_nchwc' Status Message: Input channels C is not equal to kernel channels * group.
"""

# model_transform on a file that is not an ONNX model.
NOT_ONNX = f"""  File "{SP}/onnx/__init__.py", line 145, in _deserialize
    raise google.protobuf.message.DecodeError(
google.protobuf.message.DecodeError: Protobuf decoding consumed too few bytes: 1 out of 34
"""

# model_transform of a batch-2048 test input under `prlimit --as=4500000000`.
ARENA_OOM = f"""  File "{SP}/tpu_mlir/python/tools/model_transform.py", line 210, in origin_inference
    return onnx_inference(inputs, self.converter.onnx_file)
onnxruntime.capi.onnxruntime_pybind11_state.RuntimeException: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : \
Non-zero status code returned while running Relu node. Name:'relu1' Status Message: \
/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(\
size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for \
requested buffer of size 67108864
"""

# model_transform under `prlimit --as=3000000000`: torch cannot even be mapped.
MAP_OOM = f"""  File "{SP}/torch/__init__.py", line 496, in <module>
    from torch._C import *  # noqa: F403
ImportError: libtorch_cpu.so: failed to map segment from shared object
"""

# The same tools with the bundled glibc left in place (docs/reference/tpu-mlir-on-cpu.md).
GLIBC = f"tpuc-opt: {SP}/tpu_mlir/lib/third_party/libc.so.6: version `GLIBC_2.36' not found (required by libexpat.so.1)"

# bmnetu-style lines, as tests/doubles/fake_bmnetu.py prints them (modelled, not captured).
BMNETU_UNSUPPORTED = "F0000 bmcompiler_layer.cpp:412] not supported layer type: ROIAlign (layer roi_align_1)"
BMNETU_COMPARE = "F0000 bmcompiler_cmp.cpp:140] compare failed: net result is different from the reference"
BAD_ALLOC = "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc"
GFLAGS_UNKNOWN = "ERROR: unknown command line flag 'foo'"


@pytest.mark.parametrize(
    ("log", "returncode", "reason"),
    [
        (UNSUPPORTED_OP, 1, "UnsupportedOperator"),
        (TOLERANCE, 1, "ToleranceCheckFailed"),
        (WRONG_RANK, 1, "BadInput"),
        (WRONG_CHANNELS, 1, "BadInput"),
        (NOT_ONNX, 1, "BadInput"),
        (ARENA_OOM, 1, "OutOfMemory"),
        (MAP_OOM, 1, "OutOfMemory"),
        (GLIBC, 1, "ToolchainCrash"),
        (PKG_WARNING + "Segmentation fault (core dumped)", 139, "ToolchainCrash"),
        (PKG_WARNING, -signal.SIGSEGV, "ToolchainCrash"),
        ("", 1, "ToolchainCrash"),
        # Other messages of TPU-MLIR 1.30.2's converters (their raise statements, not run here).
        ("RuntimeError: Resize Op not support now", 1, "UnsupportedOperator"),
        ("RuntimeError: This mode not support yet: tf_crop_and_resize", 1, "UnsupportedOperator"),
        ("ValueError: Unsupported ONNX attribute: sparse_tensor", 1, "UnsupportedOperator"),
        ("RuntimeError: Unsupport opset for Pad", 1, "UnsupportedOperator"),
        (BMNETU_UNSUPPORTED, 1, "UnsupportedOperator"),
        (BMNETU_COMPARE, 1, "ToleranceCheckFailed"),
        (BAD_ALLOC, 134, "OutOfMemory"),
        (GFLAGS_UNKNOWN, 1, "BadInput"),
        # Killed by SIGKILL (the OOM killer): out of memory whatever the log says.
        (PKG_WARNING + "2026/11/26 21:23:30 - INFO : ConstantFolding finished", -signal.SIGKILL, "OutOfMemory"),
        (TOLERANCE, 137, "OutOfMemory"),
    ],
)
def test_classify_real_logs(log, returncode, reason):
    assert classify(log, returncode) == reason


def test_reasons_are_condition_reasons():
    # Kubernetes condition reasons: CamelCase, letters only here.
    assert set(REASONS) == {"UnsupportedOperator", "ToleranceCheckFailed", "OutOfMemory", "ToolchainCrash", "BadInput"}
    assert all(re.fullmatch(r"[A-Z][A-Za-z]*", r) for r in REASONS)


def test_pkg_resources_warning_alone_is_not_a_verdict():
    # Every TPU-MLIR tool prints this warning; it must not steer the classification.
    for reason in REASONS:
        if reason != "ToolchainCrash":
            assert classify(PKG_WARNING * 3, 1) != reason


def test_tail_keeps_last_lines():
    text = "\n".join(f"line {i}" for i in range(100))
    assert tail(text).splitlines() == [f"line {i}" for i in range(100 - LOG_TAIL_LINES, 100)]
    assert tail("a\nb", 5) == "a\nb"


def test_compile_failure_carries_reason_message_and_tail():
    err = CompileFailure("BadInput", "no model", "last line")
    assert (err.reason, err.message, err.log_tail) == ("BadInput", "no model", "last line")
    assert str(err) == "BadInput: no model"


def test_run_logged_records_command_and_output(tmp_path: Path):
    step, text = run_logged(
        "echo", [sys.executable, "-c", "print('hello'); import sys; sys.exit(3)"], tmp_path, tmp_path / "echo.log"
    )
    assert step.returncode == 3 and step.name == "echo" and step.seconds >= 0
    assert text.startswith("$ ") and "hello" in text
    assert (tmp_path / "echo.log").read_text() == text
    failure = failure_for(step, text, "echo")
    assert failure.reason == "ToolchainCrash" and "exit 3" in failure.message


def test_run_logged_missing_binary_and_timeout(tmp_path: Path):
    step, text = run_logged("x", [str(tmp_path / "nope")], tmp_path, tmp_path / "x.log")
    assert step.returncode == 127 and "cannot start" in text
    step, text = run_logged(
        "s", [sys.executable, "-c", "import time; time.sleep(5)"], tmp_path, tmp_path / "s.log", timeout=0.5
    )
    assert step.returncode == 124 and "timed out" in text


def test_sha256_file(tmp_path: Path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
