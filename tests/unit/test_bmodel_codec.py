"""bmfleet.bmodel codec: schema-driven FlatBuffers read/write, round trips and property tests."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmfleet.bmodel import Binary, BModelError, RawTable, decode, encode, load_bytes, pack, read_model_bytes, synth
from bmfleet.bmodel.codec import RelEntry, map_binaries, walk_binaries
from bmfleet.bmodel.schema import FIELDS_BY_NAME, STRUCTS, TABLES, Field, Kind, Scalar

# ------------------------------------------------------------------------------------ strategies

_INT_RANGES = {
    Scalar.U8: (0, 255),
    Scalar.I32: (-(2**31), 2**31 - 1),
    Scalar.U32: (0, 2**32 - 1),
    Scalar.U64: (0, 2**64 - 1),
}


def scalar(sc: Scalar) -> st.SearchStrategy[int | float]:
    if sc is Scalar.F32:
        return st.floats(width=32, allow_nan=False)
    lo, hi = _INT_RANGES[sc]
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0 if lo <= 0 else lo]))


def struct_value(name: str) -> st.SearchStrategy[Binary | RelEntry]:
    u64 = st.integers(0, 2**64 - 1)
    u32 = st.integers(0, 2**32 - 1)
    if name == "Binary":
        return st.builds(Binary, u64, u64)
    return st.builds(RelEntry, u32, u32, u32)


def value(f: Field) -> st.SearchStrategy[object]:
    small = {"max_size": 3}
    match f.kind:
        case Kind.SCALAR:
            assert f.scalar is not None
            return scalar(f.scalar)
        case Kind.STRING:
            return st.binary(max_size=12)
        case Kind.STRUCT:
            assert f.ref is not None
            return struct_value(f.ref)
        case Kind.TABLE:
            assert f.ref is not None
            return st.deferred(lambda: table(f.ref or ""))
        case Kind.VEC_SCALAR:
            assert f.scalar is not None
            return st.lists(scalar(f.scalar), max_size=5)
        case Kind.VEC_STRUCT:
            assert f.ref is not None
            return st.lists(struct_value(f.ref), **small)
        case Kind.VEC_TABLE:
            assert f.ref is not None
            return st.lists(st.deferred(lambda: table(f.ref or "")), max_size=2)


def table(tname: str) -> st.SearchStrategy[RawTable]:
    req = {f.name: value(f) for f in TABLES[tname] if f.required}
    opt = {f.name: value(f) for f in TABLES[tname] if not f.required}
    return st.fixed_dictionaries(req, optional=opt).map(lambda d: RawTable(tname, d))  # type: ignore[arg-type]


def strip_defaults(t: RawTable) -> RawTable:
    """What a reader sees after a writer that (like flatc's) omits scalars equal to their default."""
    out = RawTable(t.type)
    for name, v in t.fields.items():
        f = FIELDS_BY_NAME[t.type][name]
        if f.kind is Kind.SCALAR and v == f.default:
            continue
        if isinstance(v, RawTable):
            out.fields[name] = strip_defaults(v)
        elif isinstance(v, list):
            out.fields[name] = [strip_defaults(c) if isinstance(c, RawTable) else c for c in v]  # type: ignore[misc]
        else:
            out.fields[name] = v
    return out


# ------------------------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table("Model"))
def test_any_model_round_trips(model: RawTable) -> None:
    buf = encode(model)
    assert decode(buf) == strip_defaults(model)
    # and re-encoding the decoded tree is a fixed point
    assert decode(encode(decode(buf))) == decode(buf)


@settings(max_examples=60, deadline=None)
@given(table("Tensor"))
def test_tensor_fields_and_defaults(t: RawTable) -> None:
    model = RawTable(
        "Model",
        {
            "type": b"B",
            "version": b"2.2",
            "time": b"t\n",
            "chip": b"BM1684X",
            "net": [
                RawTable(
                    "Net",
                    {"name": b"n", "parameter": [RawTable("NetParameter", {"input_tensor": [t], "output_tensor": []})]},
                )
            ],
        },
    )
    got = decode(encode(model)).get_tables("net")[0].get_tables("parameter")[0].get_tables("input_tensor")[0]
    for f in TABLES["Tensor"]:
        if f.kind is Kind.SCALAR:
            expect = t.fields.get(f.name, f.default)
            assert (got.get_float(f.name) if f.scalar is Scalar.F32 else got.get_int(f.name)) == expect


@settings(max_examples=40, deadline=None)
@given(
    blobs=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8),
    align=st.sampled_from([1, 16, 4096]),
)
def test_file_round_trip_resolves_every_blob(blobs: list[bytes], align: int) -> None:
    from bmfleet.bmodel import BinaryWriter

    bw = BinaryWriter(align)
    refs = [bw.add(b) for b in blobs]
    groups = [
        RawTable("CmdGroup", {"binary_bdc": r, "binary_gdma": refs[(i + 1) % len(refs)]}) for i, r in enumerate(refs)
    ]
    root = RawTable(
        "Model",
        {
            "type": b"B",
            "version": b"2.2",
            "time": b"now\n",
            "chip": b"BM1684",
            "net": [
                RawTable(
                    "Net",
                    {
                        "name": b"n",
                        "parameter": [
                            RawTable("NetParameter", {"input_tensor": [], "output_tensor": [], "cmd_group": groups})
                        ],
                    },
                )
            ],
        },
    )
    data = pack(root, bw.data, align)
    assert len(data) % align == 0
    with load_bytes(data) as f:
        got = [bytes(f.blob(b)) for _, b, _ in walk_binaries(f.root)]
        assert f.header.binary_offset % align == 0
    want = []
    for i in range(len(blobs)):
        want += [blobs[i], blobs[(i + 1) % len(blobs)]]
    assert got == want
    # identical blobs are stored once
    distinct = {b for b in blobs if b}
    assert len({r.start for r in refs if r.size}) == len(distinct)


# ------------------------------------------------------------------------------------ examples


def test_synthetic_classifier_reads_back() -> None:
    m = read_model_bytes(synth.classifier("resnet", batch=4, chip="BM1684X"))
    assert (m.chip, m.type, m.version) == ("BM1684X", "B", synth.VERSION)
    assert m.bmodel_version == f"B.{synth.VERSION}"
    assert m.time.endswith("\n")
    (net,) = m.nets
    assert net.name == "resnet" and not net.is_dynamic
    (stage,) = net.stages
    (inp,) = stage.inputs
    assert (inp.name, inp.dtype, inp.shape, inp.scale, inp.zero_point) == ("input", "float32", [4, 3, 32, 32], 1.0, 0)
    assert stage.outputs[0].shape == [4, 10]
    assert stage.coeff_size == 3000 and stage.core_num == 1
    assert m.kernel_module is not None and m.kernel_module.size == 65536
    assert m.header is not None and m.header.header_size == 64 and m.file_size % 4096 == 0
    assert m.aligned_4k


def test_quantized_input_scale_and_zero_point() -> None:
    data = synth.classifier(batch=2, in_dtype=2, in_scale=0.0078125, in_zero_point=-3, out_dtype=1)
    st0 = read_model_bytes(data).nets[0].stages[0]
    assert (st0.inputs[0].dtype, st0.inputs[0].scale, st0.inputs[0].zero_point) == ("int8", 0.0078125, -3)
    assert st0.outputs[0].dtype == "float16"


def test_absent_scale_reads_as_one_and_subnet_id_as_minus_one() -> None:
    t = RawTable("Tensor", {"name": b"x"})
    assert t.get_float("scale") == 1.0
    assert RawTable("SubNet").get_int("id") == -1


def test_encode_rejects_bad_values() -> None:
    bad = RawTable("Model", {"type": b"B", "version": b"v", "time": b"t", "chip": b"c", "net": [], "device_num": -1})
    with pytest.raises(BModelError, match=r"Model\.device_num: -1 is not a valid uint32"):
        encode(bad)
    with pytest.raises(BModelError, match="required field missing"):
        encode(RawTable("Model", {"type": b"B"}))
    with pytest.raises(KeyError):
        RawTable("Model").set("nope", 1)


def test_map_binaries_visits_every_binary_in_walk_order() -> None:
    with load_bytes(synth.classifier()) as f:
        root = f.root.copy()
    seen: list[Binary] = []

    def note(b: Binary, _in_vector: bool) -> Binary:
        seen.append(b)
        return Binary(b.start + 1, b.size)

    before = [b for _, b, _ in walk_binaries(root)]
    map_binaries(root, note)
    assert seen == before
    assert [b.start for _, b, _ in walk_binaries(root)] == [b.start + 1 for b in before]


def test_structs_match_their_declared_size() -> None:
    assert STRUCTS["Binary"].size == 16 and STRUCTS["RelEntry"].size == 12
    assert struct.calcsize(STRUCTS["RelEntry"].fmt) == 12
