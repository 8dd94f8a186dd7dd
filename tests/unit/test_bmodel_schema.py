"""The schema table, the committed bmodel.fbs, and an independent cross-check with flatc (when available).

flatc 2.0.8 comes from Debian (``apt-get download flatbuffers-compiler libflatbuffers2`` and ``dpkg-deb -x``
into ``.cache/flatc-2.0.8/root``); the cross-check is skipped when it is not there. Set ``BMFLEET_FLATC`` to
use another binary.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmfleet.bmodel import Binary, RawTable, decode, encode, load_bytes, synth
from bmfleet.bmodel.codec import RelEntry
from bmfleet.bmodel.schema import FIELDS_BY_NAME, TABLES, Kind, Scalar, to_idl

ROOT = Path(__file__).resolve().parents[2]
FBS = ROOT / "operator" / "bmfleet" / "bmodel" / "bmodel.fbs"


def test_committed_fbs_matches_the_schema_table() -> None:
    assert FBS.read_text() == to_idl(), "regenerate: python -c 'from bmfleet.bmodel.schema import to_idl; ...'"


def test_ids_are_dense_and_names_unique() -> None:
    for tname, fields in TABLES.items():
        assert [f.id for f in fields] == list(range(len(fields))), tname
        assert len({f.name for f in fields}) == len(fields), tname
        for f in fields:
            if f.kind in (Kind.TABLE, Kind.VEC_TABLE):
                assert f.ref in TABLES, (tname, f.name)


def test_reference_defaults() -> None:
    assert FIELDS_BY_NAME["Tensor"]["scale"].default == 1.0
    assert FIELDS_BY_NAME["SubNet"]["id"].default == -1
    required = {(t, f.name) for t, fs in TABLES.items() for f in fs if f.required}
    assert required == {
        ("Model", "type"),
        ("Model", "version"),
        ("Model", "time"),
        ("Model", "chip"),
        ("Model", "net"),
        ("Net", "name"),
        ("NetParameter", "input_tensor"),
        ("NetParameter", "output_tensor"),
        ("Tensor", "name"),
        ("Location", "name"),
        ("KernelModule", "file_name"),
        ("KernelModule", "binary"),
        ("CpuopModule", "file_name"),
        ("CpuopModule", "binary"),
    }


# ------------------------------------------------------------------------------------ flatc cross-check


def find_flatc() -> tuple[str, dict[str, str]] | None:
    env = dict(os.environ)
    if os.environ.get("BMFLEET_FLATC"):
        return os.environ["BMFLEET_FLATC"], env
    for cand in sorted((ROOT / ".cache").glob("flatc-*/root/usr/bin/flatc")):
        lib = cand.parents[1] / "lib" / "x86_64-linux-gnu"
        env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
        return str(cand), env
    found = shutil.which("flatc")
    return (found, env) if found else None


FLATC = find_flatc()
needs_flatc = pytest.mark.skipif(FLATC is None, reason="flatc not found (see module docstring)")


def to_json(t: RawTable) -> dict[str, Any]:
    """Our tree as flatc's JSON (defaults omitted, as flatc prints without --defaults-json)."""
    out: dict[str, Any] = {}
    for f in TABLES[t.type]:
        if f.name not in t.fields:
            continue
        v = t.fields[f.name]
        if f.kind is Kind.SCALAR and v == f.default:
            continue
        if isinstance(v, RawTable):
            out[f.name] = to_json(v)
        elif isinstance(v, bytes):
            out[f.name] = v.decode()
        elif isinstance(v, (Binary, RelEntry)):
            out[f.name] = dict(v.__dict__)
        elif isinstance(v, list):
            out[f.name] = [
                to_json(x) if isinstance(x, RawTable) else dict(x.__dict__) if isinstance(x, (Binary, RelEntry)) else x
                for x in v
            ]
        else:
            out[f.name] = v
    return out


def close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-6)  # flatc prints 6 decimals
    return bool(a == b)


def flatc(tmp: Path, *args: str) -> None:
    assert FLATC is not None
    exe, env = FLATC
    subprocess.run([exe, "--strict-json", "-o", str(tmp), str(FBS), *args], check=True, env=env, capture_output=True)


def flatc_decode(tmp: Path, fb: bytes) -> dict[str, Any]:
    (tmp / "m.bin").write_bytes(fb)
    flatc(tmp, "--json", "--raw-binary", "--", str(tmp / "m.bin"))
    doc: dict[str, Any] = json.loads((tmp / "m.json").read_text())
    return doc


def flatc_encode(tmp: Path, doc: dict[str, Any]) -> bytes:
    (tmp / "in.json").write_text(json.dumps(doc))
    flatc(tmp, "--binary", str(tmp / "in.json"))
    return (tmp / "in.bin").read_bytes()


def synthetic_models() -> list[bytes]:
    return [
        synth.classifier("resnet", 4, chip="BM1684X", in_dtype=2, in_scale=0.0123, in_zero_point=-5),
        synth.classifier("yolo", 1, chip="BM1684", kernel_mode=-4096),
    ]


@needs_flatc
@pytest.mark.parametrize("index", [0, 1])
def test_flatc_reads_what_we_write_and_we_read_what_flatc_writes(tmp_path: Path, index: int) -> None:
    with load_bytes(synthetic_models()[index]) as f:
        h = f.header
        fb = f._data[h.header_size : h.header_size + h.flatbuffers_size]  # type: ignore[index]
        ours = f.root
    assert close(flatc_decode(tmp_path, bytes(fb)), to_json(ours))
    assert decode(flatc_encode(tmp_path, to_json(ours))) == decode(encode(ours))


_ascii = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=8)


@needs_flatc
@settings(max_examples=15, deadline=None)
@given(
    names=st.lists(_ascii, min_size=1, max_size=3),
    dims=st.lists(st.integers(0, 2**64 - 1), max_size=4),
    scale=st.floats(width=32, allow_nan=False, allow_infinity=False),
    zp=st.integers(-(2**31), 2**31 - 1),
    dtype=st.integers(0, 13),
)
def test_flatc_agrees_on_generated_tensors(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], dims: list[int], scale: float, zp: int, dtype: int
) -> None:
    tmp = tmp_path_factory.mktemp("flatc")
    tensors = [
        RawTable(
            "Tensor",
            {
                "name": n.encode(),
                "shape": [RawTable("Shape", {"dim": dims})],
                "scale": scale,
                "zero_point": zp,
                "data_type": dtype,
                "relentry": RelEntry(1, 2, 3),
            },
        )
        for n in names
    ]
    param = RawTable("NetParameter", {"input_tensor": tensors, "output_tensor": tensors[:1], "ctx_sizes": dims})
    root = RawTable(
        "Model",
        {
            "type": b"B",
            "version": b"2.2",
            "time": b"t",
            "chip": b"BM1684X",
            "net": [RawTable("Net", {"name": b"n", "parameter": [param]})],
            "lib_backend": Binary(2**63, 5),
        },
    )
    fb = encode(root)
    assert close(flatc_decode(tmp, fb), to_json(decode(fb)))
    assert decode(flatc_encode(tmp, to_json(decode(fb)))) == decode(fb)
    assert all(Scalar.F32.fits(scale) for _ in [0])
