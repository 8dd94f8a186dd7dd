"""TPU-MLIR command-line builders and helpers: pure functions, no toolchain needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bmfleet.toolchains.common import CompileFailure
from bmfleet.toolchains.tpu_mlir import (
    BIN_ENV,
    DEFAULT_TOLERANCE,
    InputSpec,
    StageFiles,
    Tolerance,
    compile_stage,
    find_bin_dir,
    make_test_input,
    model_deploy_command,
    model_transform_command,
    net_name,
    opt_args,
    quantize,
    run_calibration_command,
    shapes_arg,
    tool_env,
    tpu_mlir_version,
)
from bmfleet.worker.compile import CompileRequest

BIN = Path("/opt/tpu-mlir/bin")
FILES = StageFiles(Path("/w"), "tiny")


def _request(**changes) -> CompileRequest:
    base = CompileRequest(
        toolchain="tpu-mlir",
        model_format="onnx",
        model="/models/tiny.onnx",
        chip="BM1684",
        precision="INT8",
        shapes=[[4, 3, 32, 32]],
        opt=2,
        dyn=False,
        cmp=True,
        mode="compile",
        outdir="/w/out",
        net_name="tiny",
        calibration_dataset="/data/cali",
        calibration_samples=8,
    )
    return dataclasses.replace(base, **changes)


def test_model_transform_minimal():
    assert model_transform_command(_request(), FILES, BIN, None) == [
        "/opt/tpu-mlir/bin/model_transform",
        "--model_name", "tiny",
        "--model_def", "/models/tiny.onnx",
        "--input_shapes", "[[4,3,32,32]]",
        "--mlir", "/w/tiny.mlir",
    ]  # fmt: skip


def test_model_transform_with_preprocess_test_input_and_types():
    request = _request(
        shapes=[[1, 3, 224, 224], [1, 10]],
        mean=[123.675, 116.28, 103.53],
        scale=[0.0171, 0.0175, 0.0174],
        pixel_format="rgb",
        channel_format="nchw",
        keep_aspect_ratio=True,
        weights="/models/net.caffemodel",
    )
    argv = model_transform_command(request, FILES, BIN, [InputSpec("image"), InputSpec("ids", "int64")])
    assert argv[argv.index("--input_shapes") + 1] == "[[1,3,224,224],[1,10]]"
    assert argv[argv.index("--model_data") + 1] == "/models/net.caffemodel"
    assert argv[argv.index("--input_types") + 1] == "float32,int64"
    assert argv[argv.index("--mean") + 1] == "123.675,116.28,103.53"
    assert argv[argv.index("--scale") + 1] == "0.0171,0.0175,0.0174"
    assert argv[argv.index("--pixel_format") + 1] == "rgb"
    assert argv[argv.index("--channel_format") + 1] == "nchw"
    assert "--keep_aspect_ratio" in argv
    assert argv[argv.index("--test_input") + 1] == "/w/tiny_test_input.npz"
    assert argv[argv.index("--test_result") + 1] == "/w/tiny_top_outputs.npz"
    assert argv[-2:] == ["--mlir", "/w/tiny.mlir"]


def test_float_inputs_need_no_input_types():
    assert "--input_types" not in model_transform_command(_request(), FILES, BIN, [InputSpec("input")])


def test_run_calibration():
    assert run_calibration_command(_request(), FILES, BIN) == [
        "/opt/tpu-mlir/bin/run_calibration", "/w/tiny.mlir",
        "--dataset", "/data/cali", "--input_num", "8", "-o", "/w/tiny_cali_table",
    ]  # fmt: skip
    argv = run_calibration_command(_request(calibration_samples=None), FILES, BIN)
    assert "--input_num" not in argv
    with pytest.raises(CompileFailure) as err:
        run_calibration_command(_request(calibration_dataset=None), FILES, BIN)
    assert err.value.reason == "BadInput"


def test_model_deploy_int8_with_check():
    assert model_deploy_command(_request(), FILES, BIN) == [
        "/opt/tpu-mlir/bin/model_deploy",
        "--mlir", "/w/tiny.mlir",
        "--quantize", "INT8",
        "--chip", "bm1684",
        "--calibration_table", "/w/tiny_cali_table",
        "--test_input", "/w/tiny_test_input.npz",
        "--test_reference", "/w/tiny_top_outputs.npz",
        "--tolerance", "0.9,0.8",
        "--opt", "2",
        "--model", "/w/compilation.bmodel",
    ]  # fmt: skip


@pytest.mark.parametrize(("precision", "quant"), [("FP32", "F32"), ("FP16", "F16"), ("BF16", "BF16"), ("INT8", "INT8")])
def test_quantize_from_precision(precision, quant):
    assert quantize(precision) == quant
    argv = model_deploy_command(_request(precision=precision, chip="BM1684X"), FILES, BIN)
    assert argv[argv.index("--quantize") + 1] == quant and argv[argv.index("--chip") + 1] == "bm1684x"
    assert argv[argv.index("--tolerance") + 1] == DEFAULT_TOLERANCE[quant].arg()
    assert ("--calibration_table" in argv) == (quant == "INT8")


def test_model_deploy_options():
    argv = model_deploy_command(_request(dyn=True, opt=0, cmp=False), FILES, BIN, Tolerance(0.99, 0.95))
    assert "--dynamic" in argv and "--disable_layer_group" in argv and "--opt" not in argv
    assert not {"--test_input", "--test_reference", "--tolerance", "--gen_test_input"} & set(argv)
    argv = model_deploy_command(_request(), FILES, BIN, Tolerance(0.99, 0.95))
    assert argv[argv.index("--tolerance") + 1] == "0.99,0.95"
    argv = model_deploy_command(_request(), FILES, BIN, check="generated")
    assert "--gen_test_input" in argv and "--test_input" not in argv and "--tolerance" in argv


def test_opt_levels():
    assert opt_args(0) == ["--disable_layer_group"]
    assert opt_args(1) == ["--opt", "1"]
    assert opt_args(2) == ["--opt", "2"]
    with pytest.raises(CompileFailure):
        opt_args(3)


@pytest.mark.parametrize(("precision", "chip"), [("INT4", "BM1684"), ("FP32", "BM1688")])
def test_unknown_precision_or_chip_is_bad_input(precision, chip):
    with pytest.raises(CompileFailure) as err:
        model_deploy_command(_request(precision=precision, chip=chip), FILES, BIN)
    assert err.value.reason == "BadInput"


def test_net_name_is_the_same_for_every_stage():
    assert net_name(_request()) == "tiny"
    assert net_name(_request(net_name=None, model="/m/resnet-50 v2.onnx")) == "resnet-50_v2"
    assert net_name(_request(net_name=None, model="/m/50.onnx")) == "net_50"
    stages = [_request(net_name=None, shapes=[[b, 3, 32, 32]]) for b in (4, 1)]
    assert len({net_name(s) for s in stages}) == 1


def test_shapes_arg():
    assert shapes_arg([[1, 3, 300, 300], [1, 10]]) == "[[1,3,300,300],[1,10]]"


def test_test_input_from_calibration_samples_fills_the_batch():
    samples = [{"input": np.full((1, 3, 2, 2), i, np.float32)} for i in range(3)]
    arrays = make_test_input([InputSpec("input")], [[4, 3, 2, 2]], samples)
    assert arrays["input"].shape == (4, 3, 2, 2) and arrays["input"].dtype == np.float32
    assert [float(x[0, 0, 0]) for x in arrays["input"]] == [0.0, 1.0, 2.0, 0.0]


def test_test_input_random_is_seeded_and_typed():
    specs = [InputSpec("x"), InputSpec("ids", "int64")]
    a = make_test_input(specs, [[2, 3], [2, 5]], [])
    b = make_test_input(specs, [[2, 3], [2, 5]], [])
    assert np.array_equal(a["x"], b["x"]) and a["x"].dtype == np.float32
    assert a["ids"].dtype == np.int64 and not a["ids"].any()
    # A calibration sample of another shape is not used.
    c = make_test_input([InputSpec("x")], [[2, 3]], [{"x": np.ones((1, 4), np.float32)}])
    assert np.array_equal(c["x"], a["x"])


def test_test_input_count_mismatch_is_bad_input():
    with pytest.raises(CompileFailure) as err:
        make_test_input([InputSpec("x")], [[1, 3], [1, 4]], [])
    assert err.value.reason == "BadInput"


def test_compile_stage_checks_before_running(tmp_path):
    with pytest.raises(CompileFailure) as err:
        compile_stage(_request(model=str(tmp_path / "absent.onnx")), tmp_path, bin_dir=BIN)
    assert err.value.reason == "BadInput" and "does not exist" in err.value.message
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(CompileFailure) as err:
        compile_stage(_request(model=str(tmp_path / "m.onnx"), mode="GenUmodel"), tmp_path, bin_dir=BIN)
    assert err.value.reason == "BadInput"


def test_find_bin_dir_from_env_and_setup_script(monkeypatch, tmp_path):
    monkeypatch.setenv(BIN_ENV, "/x/bin")
    assert find_bin_dir() == Path("/x/bin")
    monkeypatch.delenv(BIN_ENV)
    script = tmp_path / "setup.sh"
    script.write_text("echo progress >&2\necho noise\necho /venv/bin\n")
    assert find_bin_dir(script) == Path("/venv/bin")
    script.write_text("echo no python >&2\nexit 3\n")
    with pytest.raises(CompileFailure) as err:
        find_bin_dir(script)
    assert err.value.reason == "ToolchainCrash" and "no python" in err.value.log_tail


def test_version_and_env(tmp_path):
    site = tmp_path / "lib" / "python3.10" / "site-packages"
    (site / "tpu_mlir-1.30.2.dist-info").mkdir(parents=True)
    assert tpu_mlir_version(tmp_path / "bin") == "1.30.2"
    assert tpu_mlir_version(tmp_path / "elsewhere" / "bin") == "unknown"
    env = tool_env(tmp_path / "bin")
    assert env["PATH"].startswith(str(tmp_path / "bin")) and "PYTHONPATH" not in env
    assert env["VIRTUAL_ENV"] == str(tmp_path)
