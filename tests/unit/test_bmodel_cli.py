"""``bmfleet bmodel info|verify|combine`` through an argparse parser built with ``add_commands``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bmfleet.bmodel import synth
from bmfleet.cli.bmodel_cmd import add_commands


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bmfleet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "b4.bmodel"
    b = tmp_path / "b1.bmodel"
    a.write_bytes(synth.classifier("tiny", 4, chip="BM1684", in_dtype=2, in_scale=0.125))
    b.write_bytes(synth.classifier("tiny", 1, chip="BM1684", in_dtype=2, in_scale=0.125))
    return a, b


def test_info_text_has_model_tool_lines(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("bmodel", "info", str(files[0])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"bmodel version: B.{synth.VERSION}\nchip: BM1684\ncreate time: ")
    assert "net 0: [tiny]  static\n------------\nstage 0, core num: 1\n" in out
    assert "input: input, [4, 3, 32, 32], int8, scale: 0.125, zero_point: 0\n" in out
    assert "output: output, [4, 10], float32, scale: 1, zero_point: 0\n" in out
    assert "device mem size: " in out and "bmodel is 4k aligned" in out


def test_info_json(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("bmodel", "info", str(files[0]), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["chip"] == "BM1684" and doc["bmodel_version"] == f"B.{synth.VERSION}"
    (stage,) = doc["nets"][0]["stages"]
    assert stage["inputs"][0] == {
        "name": "input",
        "dtype": "int8",
        "dtype_id": 2,
        "shape": [4, 3, 32, 32],
        "scale": 0.125,
        "zero_point": 0,
        "size": 4 * 4 * 3 * 32 * 32,
        "device_addr": synth.CTX_ADDR,
        "gmem_stmode": 0,
        "mem_type": 1,
    }
    assert stage["memory"]["coeff_size"] == 3000
    assert doc["memory"]["weight"] == 3000 and doc["file"]["header_size"] == 64


def test_verify_ok_and_broken(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("bmodel", "verify", str(files[0])) == 0
    assert "OK (BM1684, 1 net(s), 1 stage(s))" in capsys.readouterr().out
    broken = tmp_path / "broken.bmodel"
    broken.write_bytes(files[0].read_bytes()[:5000])
    assert run("bmodel", "verify", str(broken)) == 1
    err = capsys.readouterr().err
    assert err.startswith("bmfleet bmodel: error: ") and "truncated" in err and str(broken) in err
    assert run("bmodel", "info", str(tmp_path / "missing.bmodel")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_combine(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.bmodel"
    assert run("bmodel", "combine", str(files[1]), str(files[0]), "-o", str(out)) == 0
    assert "tiny (2 stages)" in capsys.readouterr().out
    assert run("bmodel", "info", str(out), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["inputs"][0]["shape"][0] for s in doc["nets"][0]["stages"]] == [4, 1]
    assert run("bmodel", "combine", str(files[0]), str(files[0]), "-o", str(tmp_path / "x.bmodel")) == 1
    assert "input shapes are the same" in capsys.readouterr().err


def test_the_cli_loads_no_heavy_module_before_a_command_needs_it() -> None:
    """`bmfleet bmodel combine` must stay faster than the vendor tool: building the parser and loading the
    bmodel library import neither pydantic, numpy, kubernetes nor kopf (issue 3's combine target)."""
    import subprocess
    import sys

    code = (
        "import sys; from bmfleet.cli.main import build_parser; build_parser(); import bmfleet.bmodel; "
        "print(sorted(m for m in ('pydantic', 'numpy', 'kubernetes', 'kopf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_gateway_default_pvc_root_is_the_workers_store_dir() -> None:
    from bmfleet.cli.gateway_cmd import PVC_ROOT
    from bmfleet.pipeline.pods import STORE_DIR

    assert PVC_ROOT == STORE_DIR
