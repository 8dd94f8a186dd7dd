"""``combine``: merge bmodels into one file, with the vendor's rules (docs/reference/bmodel-format.md §3).

- Inputs in command-line order, nets in file order, stages in order. A net name seen before adds a *stage*
  to that net (after the vendor's consistency checks); a new name adds a net.
- Every stage (NetParameter) is carried over field by field through the schema-driven codec, so fields this
  module does not interpret (device addresses, sub-nets, profiles, ...) are kept as they are. An input with a
  field the schema does not know is refused rather than silently losing it.
- Every ``Binary`` is re-pointed into the new binary section; identical blobs are stored once. Blobs are
  written in the vendor's order (kernel module, then each stage's blobs in schema-walk order, stages in
  arrival order) with TPU-MLIR 1.30.2's 4 KiB layout (see :mod:`bmfleet.bmodel.writer`); given the inputs
  in the same order, the result equals ``model_tool --combine``'s output except for the creation time.
- Stages of one net are ordered largest input first: the runtime needs the biggest batch as stage 0
  (docs/reference/tpu-mlir-on-cpu.md, "Combining one net with several batch stages"). model_tool keeps the
  command-line order instead.
- BM1684's uninitialised ``KernelModule.mode`` does not block the combine (what ``model_tool --refresh``
  works around); see :func:`_set_kernel_mode`.
- Checks the vendor tool lacks: all inputs must be for the same chip and the same ``bmodel_type``; output
  dtypes differing between the stages of a net are reported as warnings.
- Version: the first input's string (model_tool stamps its own); time: now, in ``ctime()`` form.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bmfleet.bmodel.codec import Binary, RawTable, encode, map_binaries
from bmfleet.bmodel.container import ALIGNMENT, BModelFile, open_bmodel
from bmfleet.bmodel.errors import BModelError
from bmfleet.bmodel.model import dtype_name
from bmfleet.bmodel.writer import align_up, write_file

_CHUNK = 8 << 20


@dataclass(frozen=True)
class CombineReport:
    output: Path
    nets: list[tuple[str, int]]  # (name, number of stages), in file order
    blobs: int  # distinct blobs written
    blobs_shared: int  # references that reused an identical blob
    binary_size: int
    file_size: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Stage:
    src: BModelFile
    net_index: int
    stage_index: int
    param: RawTable

    @property
    def where(self) -> str:
        return f"{self.src.where} net {self.net_index} stage {self.stage_index}"


@dataclass
class _Net:
    name: bytes
    addr_mode: int
    cascade: RawTable | None
    stages: list[_Stage] = field(default_factory=list)


class _Blobs:
    """The new binary section: pieces (new start, source file, old start, size), deduplicated by content,
    each starting on an `align` boundary."""

    def __init__(self, align: int) -> None:
        self.align = align
        self.size = 0
        self.pieces: list[tuple[int, BModelFile, int, int]] = []
        self._by_content: dict[tuple[int, bytes], int] = {}
        self._by_ref: dict[tuple[int, int, int], int] = {}
        self.shared = 0

    def add(self, src: BModelFile, b: Binary) -> Binary:
        # An empty blob goes through the same path, like model_tool 1.30.2: the first one is placed at the
        # (aligned) end of what is written so far, later ones share its start.
        ref = (id(src), b.start, b.size)
        start = self._by_ref.get(ref)
        if start is None:
            with src.blob(b) as view:
                key = (b.size, hashlib.sha256(view).digest())
            start = self._by_content.get(key)
            if start is None:
                start = align_up(self.size, self.align)
                self.size = start + b.size
                self.pieces.append((start, src, b.start, b.size))
                self._by_content[key] = start
            else:
                self.shared += 1
            self._by_ref[ref] = start
        else:
            self.shared += 1
        return Binary(start, b.size)

    @property
    def section_size(self) -> int:
        return align_up(self.size, self.align)

    def chunks(self) -> Iterator[bytes | memoryview]:
        pos = 0
        for new, src, start, size in self.pieces:
            if new > pos:
                yield bytes(new - pos)
            for off in range(0, size, _CHUNK):
                with src.blob(Binary(start + off, min(_CHUNK, size - off))) as view:
                    yield view
            pos = new + size
        if self.section_size > pos:
            yield bytes(self.section_size - pos)


def _names(ts: list[RawTable]) -> list[bytes]:
    return [t.get_bytes("name") or b"" for t in ts]


def _shapes(t: RawTable) -> list[list[int]]:
    return [s.get_ints("dim") for s in t.get_tables("shape")]


def _show(name: bytes) -> str:
    return name.decode("utf-8", errors="replace")


def _check_stage(net: _Net, new: _Stage, warnings: list[str]) -> None:
    """The vendor's AddNet checks for a second stage of a net, each against every stage already there."""
    name = _show(net.name)
    if net.cascade is not None:
        raise BModelError(f"{new.where}: net {name!r} is a cascade (multi-device) net and cannot take another stage")
    p = new.param
    for old in net.stages:
        q = old.param
        ctx = f"net {name!r}: {new.where} vs {old.where}"
        if p.get_int("is_dynamic") != q.get_int("is_dynamic"):
            raise BModelError(f"{ctx}: cannot have dynamic and static stages in one net")
        ins, old_ins = p.get_tables("input_tensor"), q.get_tables("input_tensor")
        if len(ins) != len(old_ins):
            raise BModelError(f"{ctx}: input count differs ({len(ins)} vs {len(old_ins)})")
        shape_same = True
        for i, (a, b) in enumerate(zip(ins, old_ins, strict=True)):
            an, bn = _show(a.get_bytes("name") or b""), _show(b.get_bytes("name") or b"")
            if an != bn:
                raise BModelError(f"{ctx}: input {i} name differs ({an!r} vs {bn!r})")
            if a.get_int("data_type") != b.get_int("data_type"):
                raise BModelError(
                    f"{ctx}: input {an!r} dtype differs ({dtype_name(a.get_int('data_type'))} vs "
                    f"{dtype_name(b.get_int('data_type'))})"
                )
            if a.get_float("scale") != b.get_float("scale"):
                raise BModelError(
                    f"{ctx}: input {an!r} scale differs ({a.get_float('scale')!r} vs {b.get_float('scale')!r})"
                )
            if a.get_int("zero_point") != b.get_int("zero_point"):
                raise BModelError(
                    f"{ctx}: input {an!r} zero_point differs ({a.get_int('zero_point')} vs {b.get_int('zero_point')})"
                )
            sa, sb = _shapes(a), _shapes(b)
            if len(sa) != len(sb):
                raise BModelError(f"{ctx}: input {an!r} has {len(sa)} shapes vs {len(sb)}")
            if sa != sb:
                shape_same = False
        if shape_same:
            raise BModelError(f"{ctx}: input shapes are the same; stages of one net must differ in input shape")
        if (p.get_int("n_dynamic"), p.get_int("h_w_dynamic")) != (q.get_int("n_dynamic"), q.get_int("h_w_dynamic")):
            raise BModelError(f"{ctx}: n_dynamic/h_w_dynamic differ")
        outs, old_outs = p.get_tables("output_tensor"), q.get_tables("output_tensor")
        if _names(outs) != _names(old_outs):
            raise BModelError(
                f"{ctx}: output names differ ({[_show(n) for n in _names(outs)]} vs "
                f"{[_show(n) for n in _names(old_outs)]})"
            )
        if (len(p.get_tables("sub_net")) > 1) != (len(q.get_tables("sub_net")) > 1):
            raise BModelError(f"{ctx}: one stage has several sub-nets and the other does not")
        for a, b in zip(outs, old_outs, strict=True):
            if a.get_int("data_type") != b.get_int("data_type"):
                warnings.append(
                    f"{ctx}: output {_show(a.get_bytes('name') or b'')!r} dtype differs "
                    f"({dtype_name(a.get_int('data_type'))} vs {dtype_name(b.get_int('data_type'))})"
                )


def _rebase(t: RawTable, src: BModelFile, blobs: _Blobs) -> None:
    """Point every Binary of `t` (in place) into the new section; empty entries of Binary vectors stay as
    they are, like the vendor's walk."""

    def move(b: Binary, in_vector: bool) -> Binary:
        return b if (in_vector and b.size == 0) else blobs.add(src, b)

    map_binaries(t, move)


def _rebased(t: RawTable, src: BModelFile, blobs: _Blobs) -> RawTable:
    c = t.copy()
    _rebase(c, src, blobs)
    return c


def _set_kernel_mode(km: RawTable, files: list[BModelFile], warnings: list[str]) -> None:
    """KernelModule.mode of the combined file.

    BM1684 files from TPU-MLIR 1.30.2 carry an empty kernel module whose ``mode`` is uninitialised memory
    (seen: -4096); model_tool refuses to combine files whose modes differ ("Inconsistent kernel module mode
    among models") until ``model_tool --refresh`` has cleared them. Here the mode of an empty kernel module
    is ignored (taken as 0, what --refresh writes); the inputs that do carry a kernel must agree on it.
    """
    modes: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    for f in files:
        m = f.root.get_table("kernel_module")
        b = m.get_binary("binary") if m else None
        if m is None or b is None or b.size == 0:
            continue
        modes[f.where] = m.get_int("mode")
        with f.blob(b) as view:
            digests.setdefault(hashlib.sha256(view).digest(), f.where)
    if len(set(modes.values())) > 1:
        raise BModelError(
            "inconsistent kernel module mode among models: " + ", ".join(f"{w}: {m}" for w, m in modes.items())
        )
    if len(digests) > 1:
        warnings.append(
            f"the inputs carry {len(digests)} different kernel modules; the first one is used "
            f"({', '.join(digests.values())})"
        )
    mode = next(iter(modes.values()), 0)
    if mode:
        km.set("mode", mode)
    else:
        km.fields.pop("mode", None)


def _input_elements(p: RawTable) -> int:
    total = 0
    for t in p.get_tables("input_tensor"):
        shapes = _shapes(t)
        n = 1
        for d in shapes[0] if shapes else []:
            n *= d
        total += n
    return total


def _ctime() -> bytes:
    return (time.ctime() + "\n").encode()


def _pick_module(files: list[BModelFile], name: str) -> tuple[BModelFile, RawTable] | None:
    """The first input with a non-empty module, else the first with a (empty) module table at all."""
    first: tuple[BModelFile, RawTable] | None = None
    for f in files:
        m = f.root.get_table(name)
        if m is None:
            continue
        b = m.get_binary("binary")
        if b is not None and b.size > 0:
            return f, m
        first = first or (f, m)
    return first


def combine(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    version: str | None = None,
    create_time: str | None = None,
    align: int = ALIGNMENT,
) -> CombineReport:
    """Combine `inputs` into `out` (see the module doc for the rules). BModelError on any problem.

    `version` defaults to the first input's version string; `create_time` to the current ``ctime()``.
    """
    if not inputs:
        raise BModelError("combine: no input files")
    files: list[BModelFile] = []
    try:
        for p in inputs:
            files.append(open_bmodel(p))
        return _combine(files, Path(out), version, create_time, align)
    finally:
        for f in files:
            f.close()


def _combine(
    files: list[BModelFile], out: Path, version: str | None, create_time: str | None, align: int
) -> CombineReport:
    for f in files:
        if f.unknown_fields:
            raise BModelError(
                f"{f.where}: has fields this tool does not know and would drop: {', '.join(f.unknown_fields[:5])}"
            )
    first = files[0]
    chip = first.root.get_bytes("chip") or b""
    for f in files[1:]:
        c = f.root.get_bytes("chip") or b""
        if c != chip:
            raise BModelError(f"{f.where}: chip {_show(c)} differs from {_show(chip)} ({first.where})")
    types = {f.root.get_int("bmodel_type") for f in files}
    if len(types) > 1:
        raise BModelError(f"inputs mix bmodel_type values {sorted(types)} (coeff-combined and plain models)")

    warnings: list[str] = []
    nets: dict[bytes, _Net] = {}
    arrival: list[_Stage] = []
    for f in files:
        for ni, n in enumerate(f.root.get_tables("net")):
            params = n.get_tables("parameter")
            if not params:
                continue
            name = n.get_bytes("name") or b""
            for si, p in enumerate(params):
                st = _Stage(f, ni, si, p.copy())
                acc = nets.get(name)
                if acc is None:
                    cas = n.get_table("cascade")
                    nets[name] = _Net(name, n.get_int("addr_mode"), cas.copy() if cas else None, [st])
                else:
                    if n.get_int("addr_mode") != acc.addr_mode:
                        raise BModelError(
                            f"{st.where}: net {_show(name)!r} addr_mode {n.get_int('addr_mode')} differs from "
                            f"{acc.addr_mode} ({acc.stages[0].where})"
                        )
                    if n.get_table("cascade") is not None:
                        raise BModelError(f"{st.where}: cascade net {_show(name)!r} cannot be a second stage")
                    _check_stage(acc, st, warnings)
                    acc.stages.append(st)
                arrival.append(st)
    if not nets:
        raise BModelError("combine: the inputs have no net with a stage")

    # binary section: kernel module first, then each stage's blobs in arrival order (the vendor's order)
    blobs = _Blobs(align)
    kernel = _pick_module(files, "kernel_module")
    km = _rebased(kernel[1], kernel[0], blobs) if kernel is not None else None
    if km is not None:
        _set_kernel_mode(km, files, warnings)
    for st in arrival:
        _rebase(st.param, st.src, blobs)
    cpuop = _pick_module(files, "cpuop_module")
    cm = None
    if cpuop is not None:
        cb = cpuop[1].get_binary("binary")
        if cb is not None and cb.size:
            cm = _rebased(cpuop[1], cpuop[0], blobs)
        else:  # model_tool writes an empty CpuopModule as {0, 0}, outside its blob writer
            cm = RawTable("CpuopModule", {"file_name": cpuop[1].get_bytes("file_name") or b"", "binary": Binary(0, 0)})
    backend = next((f for f in files if (f.root.get_binary("lib_backend") or Binary(0, 0)).size > 0), None)

    net_tables = []
    for acc in nets.values():
        # largest input first (stable): the runtime sizes its buffers from stage 0
        acc.stages.sort(key=lambda s: -_input_elements(s.param))
        nt = RawTable("Net", {"name": acc.name, "parameter": [s.param for s in acc.stages]})
        if acc.cascade is not None:
            nt.set("cascade", acc.cascade)
        if acc.addr_mode:
            nt.set("addr_mode", acc.addr_mode)
        net_tables.append(nt)

    model = RawTable("Model")
    model.set("type", b"B")
    model.set("version", (version.encode() if version is not None else first.root.get_bytes("version")) or b"")
    model.set("time", create_time.encode() if create_time is not None else _ctime())
    model.set("chip", chip)
    model.set("net", net_tables)
    model.set("neuron_size", max(s.param.get_int("ctx_size") for s in arrival))
    if km is not None:
        model.set("kernel_module", km)
    device_num = max(f.root.get_int("device_num") for f in files)
    if device_num:
        model.set("device_num", device_num)
    if cm is not None:
        model.set("cpuop_module", cm)
    if types != {0}:
        model.set("bmodel_type", types.pop())
    if backend is not None:
        lb = backend.root.get_binary("lib_backend")
        assert lb is not None
        model.set("lib_backend", blobs.add(backend, lb))
    else:
        model.set("lib_backend", Binary(0, 0))  # model_tool 1.30.2 writes the empty one too

    fb = encode(model)
    try:
        size = write_file(out, fb, blobs.section_size, blobs.chunks(), align)
    except OSError as e:
        raise BModelError(f"{out}: cannot write: {e.strerror or e}") from None
    return CombineReport(
        output=out,
        nets=[(_show(a.name), len(a.stages)) for a in nets.values()],
        blobs=sum(1 for piece in blobs.pieces if piece[3]),
        blobs_shared=blobs.shared,
        binary_size=blobs.section_size,
        file_size=size,
        warnings=warnings,
    )
