"""bmfleet.bmodel verification: every kind of damage gives a BModelError that says what and where."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bmfleet.bmodel import Binary, BModelError, RawTable, decode, encode, load_bytes, pack, read_model, synth, verify
from bmfleet.bmodel.container import HEADER_SIZE, MAGIC


@pytest.fixture(scope="module")
def good() -> bytes:
    return synth.classifier(batch=2, kernel=b"k" * 100, align=1)


def header(data: bytes) -> list[int]:
    return list(struct.unpack_from("<16I", data))


def with_header(data: bytes, **words: int) -> bytes:
    names = ["magic", "header_size", "flatbuffers_size", "binary_size"]
    w = header(data)
    for k, v in words.items():
        w[names.index(k)] = v
    return struct.pack("<16I", *w) + data[HEADER_SIZE:]


def err(data: bytes) -> str:
    with pytest.raises(BModelError) as e:
        load_bytes(data, "f.bmodel")
    return str(e.value)


def test_good_file_verifies(good: bytes, tmp_path: Path) -> None:
    p = tmp_path / "a.bmodel"
    p.write_bytes(good)
    m = verify(p)
    assert m.nets[0].stages[0].inputs[0].shape == [2, 3, 32, 32]
    assert not m.unknown_fields


def test_empty_and_short_files() -> None:
    assert "shorter than the 64-byte header" in err(b"")
    assert "shorter than the 64-byte header" in err(b"\xee\xaa\x55\xff" + b"\0" * 20)


def test_bad_magic(good: bytes) -> None:
    assert "bad magic 0x12345678 at offset 0, expected 0xFF55AAEE" in err(with_header(good, magic=0x12345678))
    assert "old bmtap2 format" in err(with_header(good, magic=0xFF55AAFF))


def test_sizes_past_end_of_file(good: bytes) -> None:
    msg = err(good[:-1])
    assert "truncated or bad sizes" in msg and f"file has {len(good) - 1}" in msg
    assert "truncated" in err(with_header(good, binary_size=2**32 - 1))
    assert "flatbuffers_size 0" in err(with_header(good, flatbuffers_size=0))
    assert "header_size 3" in err(with_header(good, header_size=3))


def test_header_size_is_honoured_not_hard_coded(good: bytes) -> None:
    """A reader must use header_size: a file with a 128-byte header (padding after the 16 words) reads."""
    h = header(good)
    fb_and_bin = good[HEADER_SIZE:]
    h[1] = 128
    data = struct.pack("<16I", *h) + b"\0" * 64 + fb_and_bin
    m = load_bytes(data)
    assert m.header.binary_offset == 128 + h[2]
    assert m.root.get_text("chip") == "BM1684X"
    # and blobs come from the right place
    b = m.root.get_table("kernel_module").get_binary("binary")  # type: ignore[union-attr]
    assert bytes(m.blob(b)) == b"k" * 100  # type: ignore[arg-type]


def test_binary_outside_section(good: bytes) -> None:
    with load_bytes(good) as f:
        root = f.root.copy()
        binsz = f.header.binary_size
    root.get_table("kernel_module").set("binary", Binary(binsz - 10, 11))  # type: ignore[union-attr]
    data = pack(root, b"\0" * binsz, align=1)
    msg = err(data)
    assert "Model.kernel_module.binary = {start " in msg and "past the binary section" in msg


def _model(**fields: object) -> RawTable:
    base: dict[str, object] = {"type": b"B", "version": b"2.2", "time": b"t\n", "chip": b"BM1684", "net": []}
    base.update(fields)
    return RawTable("Model", base)  # type: ignore[arg-type]


def _file(fb: bytes) -> bytes:
    return struct.pack("<16I", MAGIC, HEADER_SIZE, len(fb), 0, *([0] * 12)) + fb


def _hand_built(skip: str = "", extra_id: int | None = None) -> bytes:
    """A Model flatbuffer built directly with the flatbuffers Builder (so it can break our encoder's rules)."""
    import flatbuffers

    b = flatbuffers.Builder(256)
    strings = {name: b.CreateString(v) for name, v in (("type", "B"), ("version", "2.2"), ("time", "t\n"))}
    chip = b.CreateString("BM1684")
    b.StartVector(4, 0, 4)
    nets = b.EndVector()
    b.StartObject(12)
    for fid, name in enumerate(("type", "version", "time")):
        if name != skip:
            b.PrependUOffsetTRelativeSlot(fid, strings[name], 0)
    if skip != "chip":
        b.PrependUOffsetTRelativeSlot(3, chip, 0)
    if skip != "net":
        b.PrependUOffsetTRelativeSlot(4, nets, 0)
    if extra_id is not None:
        b.PrependUint32Slot(extra_id, 7, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def test_hand_built_model_reads() -> None:
    assert load_bytes(_file(_hand_built())).root.get_text("chip") == "BM1684"


@pytest.mark.parametrize("name", ["type", "version", "time", "chip", "net"])
def test_missing_required_field_is_named(name: str) -> None:
    assert f"Model.{name}: required field missing" in err(_file(_hand_built(skip=name)))
    with pytest.raises(BModelError, match="required field missing"):
        encode(RawTable("Model", {k: v for k, v in _model().fields.items() if k != name}))


def test_unknown_field_is_reported(tmp_path: Path) -> None:
    """A field id the schema lacks (a newer toolchain) still reads, and is listed rather than silently lost."""
    p = tmp_path / "x.bmodel"
    p.write_bytes(_file(_hand_built(extra_id=11)))
    m = read_model(p)
    assert m.unknown_fields == ["Model field id 11"]


def test_vtable_and_offsets_out_of_bounds() -> None:
    fb = bytearray(encode(_model()))
    # root offset pointing past the end
    bad = bytearray(fb)
    struct.pack_into("<I", bad, 0, len(fb) + 100)
    assert "root table: offset points past the end" in err(_file(bytes(bad)))
    # root table's soffset sending the vtable outside the buffer
    root = struct.unpack_from("<I", fb, 0)[0]
    bad = bytearray(fb)
    struct.pack_into("<i", bad, root, -(2**30))
    assert "Model: vtable out of bounds" in err(_file(bytes(bad)))


def test_string_not_terminated() -> None:
    fb = bytearray(encode(_model(chip=b"BM1684")))
    i = fb.find(b"BM1684")
    fb[i + 6] = ord("X")  # overwrite the terminating zero
    msg = err(_file(bytes(fb)))
    assert "Model.chip: string is not zero-terminated" in msg


def test_combine_refuses_to_drop_unknown_fields(tmp_path: Path) -> None:
    from bmfleet.bmodel import combine

    p = tmp_path / "x.bmodel"
    p.write_bytes(_file(_hand_built(extra_id=11)))
    with pytest.raises(BModelError, match="has fields this tool does not know and would drop: Model field id 11"):
        combine([p], tmp_path / "o.bmodel")


def test_object_budget_stops_pathological_files(good: bytes) -> None:
    with load_bytes(good) as f:
        h = f.header
    fb = good[h.header_size : h.header_size + h.flatbuffers_size]
    with pytest.raises(BModelError, match="more than 10 objects"):
        decode(fb, max_objects=10)
    assert decode(fb).type == "Model"
