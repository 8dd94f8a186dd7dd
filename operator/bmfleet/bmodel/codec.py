"""Schema-driven FlatBuffers codec for the bmodel ``Model`` buffer.

:func:`decode` verifies and reads a flatbuffer into a tree of :class:`RawTable` (every field the schema knows,
as stored; absent fields stay absent so a rewrite keeps presence), and :func:`encode` builds a buffer from such
a tree with the ``flatbuffers`` Builder. Reading goes through the ``flatbuffers`` runtime's ``Table`` API, but
only after this module has bounds-checked each access itself: the Python runtime has no verifier, so the
checks here follow the C++ ``flatbuffers::Verifier`` (offsets inside the buffer, vtables well formed, strings
zero-terminated, vectors inside the buffer, alignment, required fields present, a depth and an object budget).
"""

from __future__ import annotations

import copy
import dataclasses
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from bmfleet.bmodel._fb import flatbuffers, without_numpy

with without_numpy():
    from flatbuffers import number_types as fbn  # type: ignore[import-untyped]
    from flatbuffers.table import Table as FbTable  # type: ignore[import-untyped]

from bmfleet.bmodel.errors import BModelError
from bmfleet.bmodel.schema import (
    FIELDS_BY_ID,
    FIELDS_BY_NAME,
    ROOT,
    STRUCTS,
    TABLES,
    Field,
    Kind,
    Scalar,
    StructDef,
)

MAX_DEPTH = 64  # the C++ verifier's default
MAX_OBJECTS = 1_000_000  # the C++ verifier's default max_tables; we count vector elements too

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_STRUCT_PACKERS = {name: struct.Struct(sd.fmt) for name, sd in STRUCTS.items()}

_FLAGS: dict[Scalar, Any] = {
    Scalar.U8: fbn.Uint8Flags,
    Scalar.I32: fbn.Int32Flags,
    Scalar.U32: fbn.Uint32Flags,
    Scalar.U64: fbn.Uint64Flags,
    Scalar.F32: fbn.Float32Flags,
}


def _scalar_vector(b: Any, scalar: Scalar, vals: list[Any]) -> int:
    """A vector of scalars written as one packed block, as flatbuffers' CreateNumpyVector does, without numpy."""
    payload = struct.pack(f"<{len(vals)}{scalar.fmt[1:]}", *vals)
    b.StartVector(scalar.width, len(vals), scalar.width)
    b.head = b.head - len(payload)
    b.Bytes[b.head : b.head + len(payload)] = payload
    b.vectorNumElems = len(vals)
    return int(b.EndVector())


@dataclass(frozen=True)
class Binary:
    """``struct Binary {start; size}``: `start` is relative to the start of the binary section."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class RelEntry:
    """``struct RelEntry`` (BM1684X IO_RELOC mode): carried through as is."""

    base_addr_id: int
    addr_offset: int
    cmd_offset: int


StructValue: TypeAlias = Binary | RelEntry
_STRUCT_TYPES: dict[str, type[Binary] | type[RelEntry]] = {"Binary": Binary, "RelEntry": RelEntry}

Value: TypeAlias = (
    "int | float | bytes | Binary | RelEntry | RawTable | list[int] | list[Binary] | list[RelEntry] | list[RawTable]"
)


@dataclass
class RawTable:
    """One table as stored: `fields` holds the fields present in the buffer, by schema name.

    Strings are ``bytes`` (kept byte-exact; decode for display), vectors of scalars ``list[int]``, vectors of
    Binary ``list[Binary]``, sub-tables ``RawTable``. `unknown` lists the vtable ids that were present in the
    buffer but are not in the schema: data this codec cannot carry through a rewrite.
    """

    type: str
    fields: dict[str, Value] = field(default_factory=dict)
    unknown: tuple[int, ...] = ()

    # typed accessors; each applies the schema default for an absent scalar
    def _def(self, name: str) -> Field:
        try:
            return FIELDS_BY_NAME[self.type][name]
        except KeyError:
            raise KeyError(f"{self.type} has no field {name!r}") from None

    def has(self, name: str) -> bool:
        self._def(name)
        return name in self.fields

    def get_int(self, name: str) -> int:
        f = self._def(name)
        v = self.fields.get(name, f.default)
        assert isinstance(v, int), (self.type, name)
        return v

    def get_float(self, name: str) -> float:
        f = self._def(name)
        v = self.fields.get(name, f.default)
        assert isinstance(v, (int, float)), (self.type, name)
        return float(v)

    def get_bytes(self, name: str) -> bytes | None:
        self._def(name)
        v = self.fields.get(name)
        assert v is None or isinstance(v, bytes), (self.type, name)
        return v

    def get_text(self, name: str, default: str = "") -> str:
        """A string field decoded for display (invalid UTF-8 replaced, never an exception)."""
        v = self.get_bytes(name)
        return default if v is None else v.decode("utf-8", errors="replace")

    def get_binary(self, name: str) -> Binary | None:
        self._def(name)
        v = self.fields.get(name)
        assert v is None or isinstance(v, Binary), (self.type, name)
        return v

    def get_table(self, name: str) -> RawTable | None:
        self._def(name)
        v = self.fields.get(name)
        assert v is None or isinstance(v, RawTable), (self.type, name)
        return v

    def get_tables(self, name: str) -> list[RawTable]:
        """A vector of tables; an absent vector reads as empty."""
        self._def(name)
        v = self.fields.get(name, [])
        assert isinstance(v, list), (self.type, name)
        return [t for t in v if isinstance(t, RawTable)]

    def get_ints(self, name: str) -> list[int]:
        self._def(name)
        v = self.fields.get(name, [])
        assert isinstance(v, list), (self.type, name)
        return [x for x in v if isinstance(x, int)]

    def get_structs(self, name: str) -> list[StructValue]:
        self._def(name)
        v = self.fields.get(name, [])
        assert isinstance(v, list), (self.type, name)
        return [x for x in v if isinstance(x, (Binary, RelEntry))]

    def get_binaries(self, name: str) -> list[Binary]:
        self._def(name)
        v = self.fields.get(name, [])
        assert isinstance(v, list), (self.type, name)
        return [x for x in v if isinstance(x, Binary)]

    def set(self, name: str, value: Value) -> None:
        self._def(name)
        self.fields[name] = value

    def copy(self) -> RawTable:
        return copy.deepcopy(self)


def walk_binaries(t: RawTable, path: str = "") -> Iterator[tuple[str, Binary, bool]]:
    """Every Binary in `t`, depth first in schema field order (the vendor's reflection walk order).

    Yields (path, binary, in_vector).
    """
    path = path or t.type
    for f in TABLES[t.type]:
        if f.name not in t.fields:
            continue
        v = t.fields[f.name]
        if f.kind is Kind.STRUCT and isinstance(v, Binary):
            yield f"{path}.{f.name}", v, False
        elif f.kind is Kind.VEC_STRUCT and isinstance(v, list):
            for i, b in enumerate(v):
                if isinstance(b, Binary):
                    yield f"{path}.{f.name}[{i}]", b, True
        elif f.kind is Kind.TABLE and isinstance(v, RawTable):
            yield from walk_binaries(v, f"{path}.{f.name}")
        elif f.kind is Kind.VEC_TABLE and isinstance(v, list):
            for i, c in enumerate(v):
                if isinstance(c, RawTable):
                    yield from walk_binaries(c, f"{path}.{f.name}[{i}]")


def map_binaries(t: RawTable, fn: Callable[[Binary, bool], Binary]) -> None:
    """Replace, in place and in :func:`walk_binaries` order, every Binary `b` in `t` by ``fn(b, in_vector)``."""
    for f in TABLES[t.type]:
        if f.name not in t.fields:
            continue
        v = t.fields[f.name]
        if f.kind is Kind.STRUCT and isinstance(v, Binary):
            t.fields[f.name] = fn(v, False)
        elif f.kind is Kind.VEC_STRUCT and isinstance(v, list):
            t.fields[f.name] = [fn(b, True) for b in v if isinstance(b, Binary)]
        elif f.kind is Kind.TABLE and isinstance(v, RawTable):
            map_binaries(v, fn)
        elif f.kind is Kind.VEC_TABLE and isinstance(v, list):
            for c in v:
                if isinstance(c, RawTable):
                    map_binaries(c, fn)


def walk_unknown(t: RawTable, path: str = "") -> Iterator[str]:
    """A description (path and id) of every field in `t` that the schema does not know."""
    path = path or t.type
    for fid in t.unknown:
        yield f"{path} field id {fid}"
    for f in TABLES[t.type]:
        v = t.fields.get(f.name)
        if isinstance(v, RawTable):
            yield from walk_unknown(v, f"{path}.{f.name}")
        elif isinstance(v, list):
            for i, c in enumerate(v):
                if isinstance(c, RawTable):
                    yield from walk_unknown(c, f"{path}.{f.name}[{i}]")


# --------------------------------------------------------------------------------------------- decoding


class _Decoder:
    def __init__(self, buf: bytes, max_objects: int) -> None:
        self.buf = buf
        self.n = len(buf)
        self.objects = 0
        self.max_objects = max_objects

    def fail(self, path: str, what: str, at: int | None = None) -> BModelError:
        where = f" (flatbuffer offset {at})" if at is not None else ""
        return BModelError(f"{path}: {what}{where}")

    def need(self, pos: int, size: int, path: str, what: str, align: int = 1) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            raise self.fail(path, f"{what} out of bounds: {size} bytes at {pos}, buffer is {self.n} bytes", pos)
        if align > 1 and pos % align:
            raise self.fail(path, f"{what} misaligned: offset {pos} is not a multiple of {align}", pos)

    def count(self, k: int, path: str) -> None:
        self.objects += k
        if self.objects > self.max_objects:
            raise self.fail(path, f"more than {self.max_objects} objects: refusing to decode")

    def u32(self, pos: int) -> int:
        v: int = _U32.unpack_from(self.buf, pos)[0]
        return v

    def deref(self, pos: int, path: str, what: str) -> int:
        """Follow the uoffset stored at `pos` (already bounds-checked) and return the target position."""
        off = self.u32(pos)
        if off == 0 or off >= 2**31:
            raise self.fail(path, f"{what}: bad offset {off}", pos)
        target = pos + off
        if target >= self.n:
            raise self.fail(path, f"{what}: offset points past the end ({target} >= {self.n})", pos)
        return target

    def root(self) -> RawTable:
        self.need(0, 4, ROOT, "root offset", 4)
        return self.table(self.deref(0, ROOT, "root table"), ROOT, ROOT, 1)

    def table(self, pos: int, tname: str, path: str, depth: int) -> RawTable:
        if depth > MAX_DEPTH:
            raise self.fail(path, f"nesting deeper than {MAX_DEPTH}", pos)
        self.count(1, path)
        self.need(pos, 4, path, "table", 4)
        vt = pos - _I32.unpack_from(self.buf, pos)[0]
        self.need(vt, 4, path, "vtable", 2)
        vsize, tsize = _U16.unpack_from(self.buf, vt)[0], _U16.unpack_from(self.buf, vt + 2)[0]
        if vsize < 4 or vsize % 2:
            raise self.fail(path, f"bad vtable size {vsize}", vt)
        self.need(vt, vsize, path, "vtable", 2)
        if tsize < 4:
            raise self.fail(path, f"bad table size {tsize}", pos)
        self.need(pos, tsize, path, "table", 4)
        tab = FbTable(self.buf, pos)
        out = RawTable(tname)
        known = FIELDS_BY_ID[tname]
        unknown = []
        for fid in range((vsize - 4) // 2):
            fo = _U16.unpack_from(self.buf, vt + 4 + 2 * fid)[0]
            if fo == 0:
                continue
            if fid not in known:
                unknown.append(fid)
                continue
            if fo >= tsize:
                raise self.fail(f"{path}.{known[fid].name}", f"field offset {fo} outside the table ({tsize})", pos)
        out.unknown = tuple(unknown)
        for f in TABLES[tname]:
            fpath = f"{path}.{f.name}"
            fo = tab.Offset(f.slot)
            if fo == 0:
                if f.required:
                    raise self.fail(fpath, "required field missing", pos)
                continue
            out.fields[f.name] = self.value(tab, pos + fo, f, fpath, depth)
        return out

    def value(self, tab: FbTable, fpos: int, f: Field, path: str, depth: int) -> Value:
        match f.kind:
            case Kind.SCALAR:
                assert f.scalar is not None
                self.need(fpos, f.scalar.width, path, "scalar", f.scalar.width)
                v: int | float = tab.Get(_FLAGS[f.scalar], fpos)
                return v
            case Kind.STRUCT:
                assert f.ref is not None
                sd = STRUCTS[f.ref]
                self.need(fpos, sd.size, path, sd.name, sd.align)
                return _STRUCT_TYPES[f.ref](*_STRUCT_PACKERS[f.ref].unpack_from(self.buf, fpos))
            case _:
                pass
        self.need(fpos, 4, path, "offset", 4)
        target = self.deref(fpos, path, "offset")
        if f.kind is Kind.TABLE:
            assert f.ref is not None
            return self.table(target, f.ref, path, depth + 1)
        # strings and vectors: a uint32 length first
        self.need(target, 4, path, "length", 4)
        length = self.u32(target)
        data = target + 4
        if f.kind is Kind.STRING:
            self.need(data, length + 1, path, "string")
            if self.buf[data + length] != 0:
                raise self.fail(path, "string is not zero-terminated", data + length)
            s: bytes = tab.String(fpos)
            return s
        if f.kind is Kind.VEC_SCALAR:
            assert f.scalar is not None
            self.need(data, length * f.scalar.width, path, "vector")
            self.count(length, path)
            return list(struct.unpack_from(f"<{length}{f.scalar.fmt[1]}", self.buf, data))
        if f.kind is Kind.VEC_STRUCT:
            assert f.ref is not None
            sd = STRUCTS[f.ref]
            self.need(data, length * sd.size, path, f"vector of {sd.name}")
            self.count(length, path)
            rows = _STRUCT_PACKERS[f.ref].iter_unpack(self.buf[data : data + length * sd.size])
            if f.ref == "Binary":
                return [Binary(*r) for r in rows]
            return [RelEntry(*r) for r in rows]
        assert f.kind is Kind.VEC_TABLE and f.ref is not None
        self.need(data, length * 4, path, "vector of tables", 4)
        self.count(length, path)
        return [
            self.table(self.deref(data + 4 * i, f"{path}[{i}]", "element"), f.ref, f"{path}[{i}]", depth + 1)
            for i in range(length)
        ]


def decode(buf: bytes, max_objects: int = MAX_OBJECTS) -> RawTable:
    """Verify and read a ``Model`` flatbuffer; BModelError (with the path and offset) if it is malformed."""
    try:
        return _Decoder(bytes(buf), max_objects).root()
    except BModelError:
        raise
    except (IndexError, struct.error, ValueError, OverflowError, TypeError) as e:  # defence in depth
        raise BModelError(f"{ROOT}: malformed flatbuffer ({type(e).__name__}: {e})") from e


# --------------------------------------------------------------------------------------------- encoding


def _check_scalar(f: Field, v: object, path: str) -> int | float:
    assert f.scalar is not None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not f.scalar.fits(v):
        raise BModelError(f"{path}: {v!r} is not a valid {f.scalar.idl}")
    return v


class _Encoder:
    def __init__(self, size_hint: int) -> None:
        self.b = flatbuffers.Builder(max(1024, size_hint))

    def table(self, t: RawTable, path: str) -> int:
        if t.type not in TABLES:
            raise BModelError(f"{path}: unknown table type {t.type!r}")
        fields = TABLES[t.type]
        known = FIELDS_BY_NAME[t.type]
        for name in t.fields:
            if name not in known:
                raise BModelError(f"{path}: {t.type} has no field {name!r}")
        b = self.b
        offsets: dict[str, int] = {}
        # children first: strings, vectors, sub-tables cannot be built while a table is open
        for f in fields:
            if f.name not in t.fields:
                if f.required:
                    raise BModelError(f"{path}.{f.name}: required field missing")
                continue
            v = t.fields[f.name]
            fp = f"{path}.{f.name}"
            if f.kind is Kind.STRING:
                if not isinstance(v, bytes):
                    raise BModelError(f"{fp}: expected bytes, got {type(v).__name__}")
                offsets[f.name] = b.CreateString(v)
            elif f.kind is Kind.TABLE:
                if not isinstance(v, RawTable) or v.type != f.ref:
                    raise BModelError(f"{fp}: expected a {f.ref} table")
                offsets[f.name] = self.table(v, fp)
            elif f.kind is Kind.VEC_TABLE:
                if not isinstance(v, list):
                    raise BModelError(f"{fp}: expected a list of {f.ref}")
                kids = []
                for i, c in enumerate(v):
                    if not isinstance(c, RawTable) or c.type != f.ref:
                        raise BModelError(f"{fp}[{i}]: expected a {f.ref} table")
                    kids.append(self.table(c, f"{fp}[{i}]"))
                b.StartVector(4, len(kids), 4)
                for o in reversed(kids):
                    b.PrependUOffsetTRelative(o)
                offsets[f.name] = b.EndVector()
            elif f.kind is Kind.VEC_SCALAR:
                assert f.scalar is not None
                if not isinstance(v, list):
                    raise BModelError(f"{fp}: expected a list of {f.scalar.idl}")
                vals = [_check_scalar(f, x, f"{fp}[{i}]") for i, x in enumerate(v)]
                offsets[f.name] = _scalar_vector(b, f.scalar, vals)
            elif f.kind is Kind.VEC_STRUCT:
                assert f.ref is not None
                sd = STRUCTS[f.ref]
                cls = _STRUCT_TYPES[f.ref]
                if not isinstance(v, list) or not all(isinstance(x, cls) for x in v):
                    raise BModelError(f"{fp}: expected a list of {sd.name}")
                b.StartVector(sd.size, len(v), sd.align)
                for x in reversed(v):
                    self.struct(sd, x, fp)  # type: ignore[arg-type]
                offsets[f.name] = b.EndVector()
        b.StartObject(len(fields))
        # widest first, like flatc's generated builders, so little padding is needed
        for f in sorted(fields, key=_width, reverse=True):
            if f.name not in t.fields:
                continue
            v = t.fields[f.name]
            fp = f"{path}.{f.name}"
            if f.kind is Kind.SCALAR:
                assert f.scalar is not None
                x = _check_scalar(f, v, fp)
                if f.scalar is Scalar.F32:
                    x = float(x)
                b.PrependSlot(_FLAGS[f.scalar], f.id, x, f.default)
            elif f.kind is Kind.STRUCT:
                assert f.ref is not None
                sd = STRUCTS[f.ref]
                if not isinstance(v, _STRUCT_TYPES[f.ref]):
                    raise BModelError(f"{fp}: expected {sd.name}")
                self.struct(sd, v, fp)
                b.Slot(f.id)
            else:
                b.PrependUOffsetTRelativeSlot(f.id, offsets[f.name], 0)
        end: int = b.EndObject()
        return end

    def struct(self, sd: StructDef, v: StructValue, path: str) -> None:
        vals = dataclasses.astuple(v)
        for (name, sc), x in zip(sd.fields, vals, strict=True):
            if isinstance(x, bool) or not isinstance(x, int) or not sc.fits(x):
                raise BModelError(f"{path}.{name}: {x!r} is not a valid {sc.idl}")
        self.b.Prep(sd.align, sd.size)
        for (_, sc), x in reversed(list(zip(sd.fields, vals, strict=True))):
            self.b.Prepend(_FLAGS[sc], x)


def _width(f: Field) -> int:
    if f.kind is Kind.STRUCT:
        assert f.ref is not None
        return STRUCTS[f.ref].align
    if f.kind is Kind.SCALAR:
        assert f.scalar is not None
        return f.scalar.width
    return 4


def encode(root: RawTable, size_hint: int = 0) -> bytes:
    """Build a ``Model`` flatbuffer (no file identifier, like ``builder.Finish(model)``) from `root`."""
    if root.type != ROOT:
        raise BModelError(f"the root table must be {ROOT}, not {root.type}")
    enc = _Encoder(size_hint)
    off = enc.table(root, ROOT)
    enc.b.Finish(off)
    return bytes(enc.b.Output())
