"""bmnetu: the command line built from the seed's table, and the runner against the test double
tests/doubles/fake_bmnetu.py (bmnetu itself is not public)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from bmfleet.toolchains.bmnetu import BMNETU_ENV, bmnetu_command, bmnetu_version, find_bmnetu, run_bmnetu
from bmfleet.toolchains.common import CompileFailure, sha256_file
from bmfleet.worker.compile import CompileRequest, parse

FAKE = Path(__file__).resolve().parents[1] / "doubles" / "fake_bmnetu.py"


def _request(**changes) -> CompileRequest:
    base = CompileRequest(
        toolchain="bmnetu",
        model_format="umodel",
        model="ssd300_deploy_int8_unique_top.prototxt",
        weights="ssd300.int8umodel",
        chip="BM1684",
        precision="INT8",
        shapes=[[1, 3, 300, 300]],
        opt=2,
        dyn=False,
        cmp=True,
        mode="compile",
        outdir="/work/out",
    )
    return dataclasses.replace(base, **changes)


def test_command_with_every_flag_in_the_seeds_order():
    request = _request(shapes=[[4, 3, 300, 300], [4, 10]], net_name="ssd300", max_n=4, opt=1, dyn=True, cmp=False)
    assert bmnetu_command(request, Path("/work/out")) == [
        "bmnetu",
        "-model=ssd300_deploy_int8_unique_top.prototxt",
        "-weight=ssd300.int8umodel",
        "-shapes=[4,3,300,300],[4,10]",
        "-net_name=ssd300",
        "-opt=1",
        "-dyn=1",
        "-prec=INT8",
        "-outdir=/work/out",
        "-cmp=0",
        "-mode=compile",
        "-max_n=4",
        "-target=BM1684",
    ]


def test_optional_flags_left_at_none_are_omitted():
    argv = bmnetu_command(_request(precision="FP32"), Path("out"), binary="/opt/sdk/bin/bmnetu")
    assert argv[0] == "/opt/sdk/bin/bmnetu"
    assert not any(a.startswith(("-net_name=", "-max_n=")) for a in argv)
    # The SDK example's booleans: -dyn=0 -cmp=1.
    assert "-dyn=0" in argv and "-cmp=1" in argv and "-prec=FP32" in argv and "-opt=2" in argv


def test_command_from_a_parsed_worker_request():
    """The worker's own parser output goes straight into the builder (CompileRequest satisfies StageRequest)."""
    request = parse(
        [
            "--toolchain=bmnetu", "--model-format=umodel", "--model=m.prototxt", "--weights=m.umodel",
            "--chip=BM1684", "--precision=INT8", "--shapes=[1, 3, 300, 300]", "--outdir=/w/out", "--max-n=1",
        ]
    )  # fmt: skip
    argv = bmnetu_command(request, Path(request.outdir))
    assert "-shapes=[1,3,300,300]" in argv and "-max_n=1" in argv and "-outdir=/w/out" in argv


@pytest.mark.parametrize(
    ("changes", "needle"),
    [({"weights": None}, "-weight"), ({"precision": "FP16"}, "FP32 or INT8"), ({"chip": "BM1684X"}, "BM1684 only")],
)
def test_requests_bmnetu_cannot_take_are_bad_input(changes, needle):
    with pytest.raises(CompileFailure) as err:
        bmnetu_command(_request(**changes), Path("out"))
    assert err.value.reason == "BadInput" and needle in err.value.message


# --- the runner, against the test double -------------------------------------------------------------------------


@pytest.fixture
def fake_bmnetu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable `bmnetu` that runs the test double with this interpreter, set as $BMFLEET_BMNETU."""
    wrapper = tmp_path / "bin" / "bmnetu"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(BMNETU_ENV, str(wrapper))
    monkeypatch.delenv("FAKE_BMNETU_FAIL", raising=False)
    return wrapper


@pytest.fixture
def umodel(tmp_path: Path) -> CompileRequest:
    (tmp_path / "net_int8_unique_top.prototxt").write_text('name: "net"\n')
    (tmp_path / "net.int8umodel").write_bytes(b"\0" * 16)
    return _request(model=str(tmp_path / "net_int8_unique_top.prototxt"), weights=str(tmp_path / "net.int8umodel"))


def test_runner_collects_compilation_bmodel(fake_bmnetu, umodel, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BMNETU_ARGS_OUT", str(tmp_path / "args.json"))
    outdir = tmp_path / "out"
    result = run_bmnetu(dataclasses.replace(umodel, net_name="net", max_n=1), outdir)
    assert result.bmodel == outdir / "compilation.bmodel"
    assert result.sha256 == sha256_file(result.bmodel) and result.size == result.bmodel.stat().st_size
    assert result.toolchain == "bmnetu 0.0.0-fake"
    assert result.commands == [
        bmnetu_command(dataclasses.replace(umodel, net_name="net", max_n=1), outdir, str(fake_bmnetu))
    ]
    assert json.loads((tmp_path / "args.json").read_text()) == result.commands[0][1:]
    assert "save bmodel" in result.log_tail and (outdir / "bmnetu.log").is_file()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("unsupported", "UnsupportedOperator"),
        ("compare", "ToleranceCheckFailed"),
        ("oom", "OutOfMemory"),
        ("badalloc", "OutOfMemory"),
        ("crash", "ToolchainCrash"),
    ],
)
def test_runner_classifies_failures(fake_bmnetu, umodel, tmp_path, monkeypatch, mode, reason):
    monkeypatch.setenv("FAKE_BMNETU_FAIL", mode)
    with pytest.raises(CompileFailure) as err:
        run_bmnetu(umodel, tmp_path / "out")
    assert err.value.reason == reason
    assert not (tmp_path / "out" / "compilation.bmodel").exists()


def test_runner_missing_model_is_bad_input(fake_bmnetu, umodel, tmp_path):
    with pytest.raises(CompileFailure) as err:
        run_bmnetu(dataclasses.replace(umodel, model=str(tmp_path / "missing.prototxt")), tmp_path / "out")
    assert err.value.reason == "BadInput" and "does not exist" in err.value.log_tail


def test_runner_refuses_genumodel(fake_bmnetu, umodel, tmp_path):
    with pytest.raises(CompileFailure) as err:
        run_bmnetu(dataclasses.replace(umodel, mode="GenUmodel"), tmp_path / "out")
    assert err.value.reason == "BadInput"


def test_runner_without_bmnetu(monkeypatch, tmp_path):
    monkeypatch.delenv(BMNETU_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompileFailure) as err:
        find_bmnetu()
    assert err.value.reason == "ToolchainCrash" and BMNETU_ENV in err.value.message


def test_version_of_a_binary_without_one(tmp_path):
    assert bmnetu_version(str(tmp_path / "absent")) == "unknown"


# --- the double itself checks flags like the real tool ------------------------------------------------------------


def _run_fake(args: list[str], tmp_path: Path) -> tuple[int, str]:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_BMNETU")}
    proc = subprocess.run(
        [sys.executable, str(FAKE), *args], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("-foo=1", "unknown command line flag 'foo'"),
        ("-dyn=maybe", "illegal value 'maybe' specified for bool flag 'dyn'"),
        ("-opt=two", "illegal value 'two' specified for int32 flag 'opt'"),
        ("-opt=3", "invalid -opt=3"),
        ("-shapes=1,3,300,300", "invalid shape string"),
        ("-prec=FP16", "invalid -prec=FP16"),
        ("-target=BM1684X", "invalid -target=BM1684X"),
        ("-mode=compiled", "invalid -mode=compiled"),
    ],
)
def test_double_rejects_what_bmnetu_rejects(tmp_path, umodel, bad, message):
    argv = bmnetu_command(umodel, tmp_path / "out")[1:]
    name = bad.split("=")[0]
    argv = [a for a in argv if not a.startswith(name + "=")] + [bad]
    code, out = _run_fake(argv, tmp_path)
    assert code == 1 and message in out


def test_double_requires_outdir(tmp_path, umodel):
    argv = [a for a in bmnetu_command(umodel, tmp_path / "out")[1:] if not a.startswith("-outdir=")]
    code, out = _run_fake(argv, tmp_path)
    assert code == 1 and "'outdir' is missing" in out
