"""The agent's stdlib bmodel header reader: what it accepts, what it refuses, and agreement with other writers."""

from __future__ import annotations

import os
import random

import pytest

from bmfleet_agent import bmodel
from bmodels import make_bmodel

REAL = (
    "/root/.cache/bmfleet/tpu-mlir-1.30.2/venv/lib/python3.10/site-packages/tpu_mlir/python/tools/"
    "soc_infer/demo/Yuv2rgb_0_int8/compilation.bmodel"
)


def test_reads_chip_type_version_and_nets() -> None:
    data = make_bmodel(chip="BM1684X")
    info = bmodel.parse(data, len(data))
    assert (info.chip, info.type, info.version, info.nets) == ("BM1684X", "B", "2.2+agent-test", 1)
    assert info.header_size + info.flatbuffers_size + info.binary_size == len(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (make_bmodel(magic=0xFF55AAFF), "old bmtap2"),
        (make_bmodel(magic=0x12345678), "bad magic"),
        (make_bmodel(truncate=200), "truncated"),
        (make_bmodel(omit_chip=True), "Model.chip is missing"),
        (b"\xee\xaaU\xff" + b"\0" * 40, "not larger than"),
    ],
)
def test_refuses_broken_files(data: bytes, message: str) -> None:
    with pytest.raises(bmodel.BModelError, match=message):
        bmodel.parse(data, len(data))


def test_random_corruption_never_escapes_as_another_exception() -> None:
    """No verifier in Python: every out-of-range offset must end as BModelError, not IndexError/struct.error."""
    base = make_bmodel()
    rng = random.Random(7)
    refused = 0
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(0, 64 + 200)
            data[pos] = rng.randrange(256)
        try:
            bmodel.parse(bytes(data), len(data))
        except bmodel.BModelError:
            refused += 1
    assert refused > 100  # the mutations do hit the header and offsets


def test_read_info_reads_only_header_and_flatbuffer(tmp_path) -> None:
    data = make_bmodel(chip="BM1688", payload=1 << 20)
    path = tmp_path / "m.bmodel"
    path.write_bytes(data)
    assert bmodel.read_info(str(path)).chip == "BM1688"


def test_chip_aliases() -> None:
    assert bmodel.chip_compatible("bm1684", "BM1684")
    assert bmodel.chip_compatible("BM1686", "BM1684X")
    assert bmodel.chip_compatible("CV186X", "BM1688")
    assert not bmodel.chip_compatible("BM1684X", "BM1684")
    assert not bmodel.chip_compatible("BM1684", "BM1684X")


def test_agrees_with_the_operator_writer() -> None:
    """The operator's bmfleet.bmodel (3.11 side) writes real-shaped files; the agent must read their chip."""
    synth = pytest.importorskip("bmfleet.bmodel.synth")
    container = pytest.importorskip("bmfleet.bmodel.container")
    for chip in ("BM1684", "BM1684X"):
        data = synth.classifier(chip=chip)
        assert bmodel.parse(data, len(data)).chip == chip
    root = container.load_bytes(make_bmodel(chip="BM1684X", net="resnet")).root  # and it reads our test files
    assert root.get_text("chip") == "BM1684X"
    assert root.get_tables("net")[0].get_text("name") == "resnet"


@pytest.mark.skipif(not os.path.exists(REAL), reason="TPU-MLIR's sample bmodel is not on this machine")
def test_reads_a_tpu_mlir_compiled_file() -> None:
    info = bmodel.read_info(REAL)
    assert info.chip == "BM1684X"
    assert info.version.startswith("2.2+v1.")
