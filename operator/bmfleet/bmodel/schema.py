"""The bmodel FlatBuffers schema as data: every table, every field id, type and default.

Transcribed from the field tables of docs/reference/bmodel-format.md §2 (which follows tpu-mlir's
``bmodel.fbs``, the newest version with NetParameter ids 0-22 and Model ids 0-10). ``bmodel.fbs`` beside this
module is the same schema in FlatBuffers IDL, for flatc cross-checks; ``tests/unit/test_bmodel_schema.py``
keeps the two in step.

A field's vtable slot is ``4 + 2 * id``. The reader and the writer in :mod:`bmfleet.bmodel.codec` are driven
entirely by this table, so a field missing here is a field the combiner cannot carry; the reader reports such
fields as *unknown* instead of silently dropping them.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass


class Kind(enum.Enum):
    SCALAR = "scalar"
    STRING = "string"
    STRUCT = "struct"  # Binary or RelEntry, stored inline
    TABLE = "table"
    VEC_SCALAR = "[scalar]"
    VEC_STRUCT = "[struct]"
    VEC_TABLE = "[table]"


class Scalar(enum.Enum):
    """Scalar element types used by the schema: (struct format, byte width, IDL name)."""

    U8 = ("<B", 1, "uint8")
    I32 = ("<i", 4, "int32")
    U32 = ("<I", 4, "uint32")
    U64 = ("<Q", 8, "uint64")
    F32 = ("<f", 4, "float32")

    @property
    def fmt(self) -> str:
        return self.value[0]

    @property
    def width(self) -> int:
        return self.value[1]

    @property
    def idl(self) -> str:
        return self.value[2]

    @property
    def packer(self) -> struct.Struct:
        return _PACKERS[self]

    def fits(self, value: float) -> bool:
        """Whether `value` can be stored in this type."""
        if self is Scalar.F32:
            return True
        if not isinstance(value, int):
            return False
        lo, hi = _RANGES[self]
        return lo <= value <= hi


_PACKERS = {s: struct.Struct(s.value[0]) for s in Scalar}
_RANGES = {
    Scalar.U8: (0, 0xFF),
    Scalar.I32: (-(2**31), 2**31 - 1),
    Scalar.U32: (0, 2**32 - 1),
    Scalar.U64: (0, 2**64 - 1),
}

BINARY_SIZE = 16  # struct Binary { start:uint64; size:uint64; }
BINARY_ALIGN = 8


@dataclass(frozen=True)
class StructDef:
    """A fixed-layout struct: fields in declaration order, no padding needed for the two we have."""

    name: str
    fields: tuple[tuple[str, Scalar], ...]
    align: int

    @property
    def size(self) -> int:
        return sum(s.width for _, s in self.fields)

    @property
    def fmt(self) -> str:
        return "<" + "".join(s.fmt[1] for _, s in self.fields)


STRUCTS: dict[str, StructDef] = {
    "Binary": StructDef("Binary", (("start", Scalar.U64), ("size", Scalar.U64)), 8),
    # IO_RELOC mode of BM1684X (not in the reference page; present in TPU-MLIR 1.30.2's bmodel.fbs)
    "RelEntry": StructDef(
        "RelEntry", (("base_addr_id", Scalar.U32), ("addr_offset", Scalar.U32), ("cmd_offset", Scalar.U32)), 4
    ),
}


@dataclass(frozen=True)
class Field:
    name: str
    id: int
    kind: Kind
    scalar: Scalar | None = None  # for SCALAR and VEC_SCALAR
    ref: str | None = None  # table name for TABLE and VEC_TABLE, struct name for STRUCT and VEC_STRUCT
    default: int | float = 0
    required: bool = False

    @property
    def slot(self) -> int:
        """Byte offset of this field's entry in a vtable."""
        return 4 + 2 * self.id


def _s(name: str, fid: int, sc: Scalar, default: float = 0) -> Field:
    return Field(name, fid, Kind.SCALAR, scalar=sc, default=default)


def _str(name: str, fid: int, required: bool = False) -> Field:
    return Field(name, fid, Kind.STRING, required=required)


def _bin(name: str, fid: int, required: bool = False, ref: str = "Binary") -> Field:
    return Field(name, fid, Kind.STRUCT, ref=ref, required=required)


def _t(name: str, fid: int, ref: str, required: bool = False) -> Field:
    return Field(name, fid, Kind.TABLE, ref=ref, required=required)


def _vs(name: str, fid: int, sc: Scalar) -> Field:
    return Field(name, fid, Kind.VEC_SCALAR, scalar=sc)


def _vb(name: str, fid: int, ref: str = "Binary") -> Field:
    return Field(name, fid, Kind.VEC_STRUCT, ref=ref)


def _vt(name: str, fid: int, ref: str, required: bool = False) -> Field:
    return Field(name, fid, Kind.VEC_TABLE, ref=ref, required=required)


U8, I32, U32, U64, F32 = Scalar.U8, Scalar.I32, Scalar.U32, Scalar.U64, Scalar.F32

TABLES: dict[str, tuple[Field, ...]] = {
    "Shape": (_vs("dim", 0, U64),),
    "CmdGroup": (
        _s("bdc_num", 0, U32),
        _s("gdma_num", 1, U32),
        _bin("binary_bdc", 2),
        _bin("binary_gdma", 3),
        _s("bdc_cmd_byte", 4, U32),
        _s("gdma_cmd_byte", 5, U32),
        _vb("reloc_entries", 6, ref="RelEntry"),  # TPU-MLIR 1.30.2; not in the reference page
    ),
    "CoreCommands": (
        _vt("gdma_tiu_commands", 0, "CmdGroup"),
        _vb("sdma_commands", 1),
        _vb("hau_commands", 2),
        _vb("cdma_commands", 3),
    ),
    "StageIR": (
        _s("ir_info_len", 0, U32),
        _s("height_high", 1, I32),
        _s("height_low", 2, I32),
        _s("width_high", 3, I32),
        _s("width_low", 4, I32),
    ),
    "Location": (_str("name", 0, required=True), _s("offset", 1, U64), _s("size", 2, U64)),
    "CoeffMem": (
        _s("address", 0, U64),
        _vs("check_code", 1, U8),
        _bin("binary_coeff", 2),
        _vt("location", 3, "Location"),
        _s("encrypt_mode", 4, I32),
        _s("decrypt_size", 5, U64),
    ),
    "Tensor": (
        _str("name", 0, required=True),
        _s("data_type", 1, U32),
        _s("gmem_stmode", 2, I32),
        _s("device_addr", 3, U64),
        _s("size", 4, U64),
        _vt("shape", 5, "Shape"),
        _s("mem_type", 6, U32),
        _s("scale", 7, F32, default=1.0),
        _s("cpu_addr", 8, U32),
        _s("pad_h", 9, U32),
        _s("zero_point", 10, I32),
        _s("hidden", 11, I32),
        _s("index", 12, I32),
        _bin("relentry", 13, ref="RelEntry"),  # TPU-MLIR 1.30.2; not in the reference page
    ),
    "CpuConst": (_str("name", 0), _bin("const_data", 1), _vs("check_code", 2, U8)),
    "CpuParam": (
        _s("op_type", 0, I32),
        _bin("binary_param", 1),
        _vt("cpu_const", 2, "CpuConst"),
        _s("is_custom", 3, I32),
    ),
    "OutputFrom": (_vs("indice", 0, I32),),
    "MergeParam": (_vt("output_from", 0, "OutputFrom"),),
    "SwitchParam": (_vs("output_from", 0, I32), _vs("output_branch", 1, I32)),
    "SubNet": (
        _s("subnet_mode", 0, I32),
        _vt("cmd_group", 1, "CmdGroup"),
        _vt("cpu_param", 2, "CpuParam"),
        _vt("input_tensor", 3, "Tensor"),
        _vt("output_tensor", 4, "Tensor"),
        _s("is_dynamic", 5, I32),
        _s("ir_offset", 6, U32),
        _s("ir_len", 7, U32),
        _s("n_dynamic", 8, I32),
        _s("h_w_dynamic", 9, I32),
        _s("id", 10, I32, default=-1),
        _vs("next_subnet_ids", 11, I32),
        _t("merge_param", 12, "MergeParam"),
        _t("switch_param", 13, "SwitchParam"),
        _vt("core_commands", 14, "CoreCommands"),
        _s("run_core", 15, U32),  # TPU-MLIR 1.30.2; not in the reference page
    ),
    "NetStatic": (),  # obsolete, empty in tpu-mlir
    "NetDynamic": (),  # obsolete, empty in tpu-mlir
    "NetParameter": (
        _vt("input_tensor", 0, "Tensor", required=True),
        _vt("output_tensor", 1, "Tensor", required=True),
        _s("ctx_addr", 2, U64),
        _s("ctx_size", 3, U64),
        _t("coeff_mem", 4, "CoeffMem"),
        _s("is_dynamic", 5, I32),
        _s("n_dynamic", 6, I32),
        _s("h_w_dynamic", 7, I32),
        _vt("cmd_group", 8, "CmdGroup"),
        _bin("net_profile", 9),
        _vt("stage_ir", 10, "StageIR"),
        _bin("binary_ir", 11),
        _vt("sub_net", 12, "SubNet"),
        _s("cpu_mem_size", 13, U32),
        _vs("ctx_sizes", 14, U64),
        _bin("net_stat", 15),
        _s("core_num", 16, U32),
        _s("io_addr", 17, U64),
        _s("io_size", 18, U64),
        _bin("tensor_loc", 19),
        _s("dynamic_ctx_addr", 20, U64),
        _s("dynamic_coeff_offset", 21, U64),
        _s("dynamic_combined_coeff_offset", 22, U64),
    ),
    "Cascade": (_s("device_id", 0, U32), _s("step", 1, U32), _str("main_name", 2)),
    "Net": (
        _str("name", 0, required=True),
        _vt("net_static", 1, "NetStatic"),
        _vt("net_dynamic", 2, "NetDynamic"),
        _vt("parameter", 3, "NetParameter"),
        _t("cascade", 4, "Cascade"),
        _s("addr_mode", 5, I32),
    ),
    "KernelModule": (
        _str("file_name", 0, required=True),
        _bin("binary", 1, required=True),
        _s("mode", 2, I32),  # 0 pio ("normal"), 1 rvti; TPU-MLIR 1.30.2; not in the reference page
    ),
    "CpuopModule": (_str("file_name", 0, required=True), _bin("binary", 1, required=True)),
    "Model": (
        _str("type", 0, required=True),
        _str("version", 1, required=True),
        _str("time", 2, required=True),
        _str("chip", 3, required=True),
        _vt("net", 4, "Net", required=True),
        _s("neuron_size", 5, U64),
        _t("kernel_module", 6, "KernelModule"),
        _s("device_num", 7, U32),
        _t("cpuop_module", 8, "CpuopModule"),
        _s("bmodel_type", 9, U32),
        _bin("lib_backend", 10),
    ),
}

ROOT = "Model"

FIELDS_BY_NAME: dict[str, dict[str, Field]] = {t: {f.name: f for f in fs} for t, fs in TABLES.items()}
FIELDS_BY_ID: dict[str, dict[int, Field]] = {t: {f.id: f for f in fs} for t, fs in TABLES.items()}


def field(table: str, name: str) -> Field:
    """The definition of `table.name`; KeyError for a name the schema does not have."""
    return FIELDS_BY_NAME[table][name]


def to_idl() -> str:
    """The schema as FlatBuffers IDL text (what ``bmodel.fbs`` holds)."""

    def ftype(f: Field) -> str:
        match f.kind:
            case Kind.SCALAR:
                assert f.scalar is not None
                return f.scalar.idl
            case Kind.STRING:
                return "string"
            case Kind.STRUCT:
                return f.ref or "Binary"
            case Kind.TABLE:
                assert f.ref is not None
                return f.ref
            case Kind.VEC_SCALAR:
                assert f.scalar is not None
                return f"[{f.scalar.idl}]"
            case Kind.VEC_STRUCT:
                return f"[{f.ref}]"
            case Kind.VEC_TABLE:
                return f"[{f.ref}]"

    out = [
        "// Generated from operator/bmfleet/bmodel/schema.py by `schema.to_idl()`; do not edit.",
        "// Field ids and defaults transcribed from docs/reference/bmodel-format.md section 2, plus the four fields",
        "// TPU-MLIR 1.30.2 adds (CmdGroup.reloc_entries, Tensor.relentry, SubNet.run_core, KernelModule.mode).",
        "namespace bmodel;",
        "",
    ]
    for sd in STRUCTS.values():
        out.append(f"struct {sd.name} {{")
        out += [f"  {n}:{sc.idl};" for n, sc in sd.fields]
        out += ["}", ""]
    for tname, fields in TABLES.items():
        out.append(f"table {tname} {{")
        for f in fields:
            default = ""
            if f.kind is Kind.SCALAR and f.default != 0:
                default = f" = {f.default}"
            attrs = [f"id: {f.id}"]
            if f.required:
                attrs.insert(0, "required")
            out.append(f"  {f.name}:{ftype(f)}{default} ({', '.join(attrs)});")
        out.append("}")
        out.append("")
    out.append(f"root_type {ROOT};")
    return "\n".join(out) + "\n"
