"""Typed, read-only view of a bmodel: what ``bmfleet bmodel info`` and the rest of bmfleet need.

Built from the raw tree (:class:`bmfleet.bmodel.codec.RawTable`), with the schema defaults applied.
The memory summary reproduces ``model_tool --info``'s arithmetic (docs/reference/bmodel-format.md §4),
including its quirk of counting stage 0 once per stage, so the numbers agree with the vendor tool.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bmfleet.bmodel.codec import RawTable, walk_binaries
from bmfleet.bmodel.container import BModelFile, Header

DTYPES: dict[int, tuple[str, float]] = {
    0: ("float32", 4),
    1: ("float16", 2),
    2: ("int8", 1),
    3: ("uint8", 1),
    4: ("int16", 2),
    5: ("uint16", 2),
    6: ("int32", 4),
    7: ("uint32", 4),
    8: ("bfloat16", 2),
    9: ("int4", 0.5),
    10: ("uint4", 0.5),
    11: ("fp20", 0),
    12: ("f8e5m2", 1),
    13: ("f8e4m3", 1),
}
VENDOR_DTYPE_NAMES = 11  # model_tool names 0-10 and prints "unkown" (sic) for the rest


def dtype_name(code: int) -> str:
    """Our name for a ``Tensor.data_type`` value (model_tool's names for 0-10)."""
    return DTYPES[code][0] if code in DTYPES else f"unknown({code})"


def vendor_dtype_name(code: int) -> str:
    """The name ``model_tool --info`` prints for a data_type."""
    return DTYPES[code][0] if 0 <= code < VENDOR_DTYPE_NAMES else "unkown"


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    dtype_id: int
    shape: list[int]  # shape[0].dim, what tools and the runtime read
    scale: float
    zero_point: int
    size: int = 0  # device bytes
    device_addr: int = 0
    gmem_stmode: int = 0
    mem_type: int = 0
    hidden: int = 0
    index: int = 0
    shapes: list[list[int]] = field(default_factory=list)  # every Shape entry (dynamic nets may have several)

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Stage:
    index: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    ctx_addr: int = 0
    ctx_size: int = 0
    ctx_sizes: list[int] = field(default_factory=list)
    coeff_address: int = 0
    coeff_size: int = 0
    coeff_check_code: str = ""  # hex of the SHA-256 the runtime dedups weights by
    io_addr: int = 0
    io_size: int = 0
    cpu_mem_size: int = 0
    is_dynamic: bool = False
    n_dynamic: bool = False
    h_w_dynamic: bool = False
    subnet_count: int = 0
    core_num: int = 0
    cmd_group_count: int = 0


@dataclass(frozen=True)
class Cascade:
    device_id: int
    step: int
    main_name: str


@dataclass(frozen=True)
class Net:
    index: int
    name: str
    stages: list[Stage]
    addr_mode: int = 0
    cascade: Cascade | None = None

    @property
    def is_dynamic(self) -> bool:
        """model_tool decides static/dynamic from stage 0."""
        return bool(self.stages) and self.stages[0].is_dynamic


@dataclass(frozen=True)
class Module:
    """KernelModule or CpuopModule: the firmware ``.so`` carried in the binary section."""

    file_name: str
    start: int
    size: int
    mode: int = 0  # KernelModule.mode: 0 pio ("normal"), 1 rvti; garbage in BM1684 files (see combine)


@dataclass(frozen=True)
class MemoryInfo:
    """``model_tool --info``'s memory summary (bmodel_mem_info_t)."""

    coeff: int = 0
    neuron: int = 0
    bd_cmd: int = 0
    gdma_cmd: int = 0
    middle_buffer: int = 0
    dynamic_ir: int = 0
    host_coeff: int = 0
    host_neuron: int = 0

    @property
    def instruct(self) -> int:
        return self.bd_cmd + self.gdma_cmd + self.dynamic_ir

    @property
    def runtime(self) -> int:
        return self.neuron + self.middle_buffer

    @property
    def device_total(self) -> int:
        return self.coeff + self.instruct + self.runtime

    @property
    def host_total(self) -> int:
        return self.host_coeff + self.host_neuron


# model_tool 1.30.2 also prints "estimated SoC/PCIE CPU peak", a host-memory estimate whose formula is not
# published. This reproduces it on every file we could put through the vendor tool (real BM1684 and BM1684X
# compiler output, single and combined, and 13 synthetic layouts probing each term): a constant plus the
# largest of (twice the kernel module, the largest command blob - doubled on BM1684X -, and on PCIe also the
# deduplicated weights). Inferred, not documented: dynamic IR, CPU layers and multi-core files are untested.
CPU_PEAK_BASE = 729088


@dataclass(frozen=True)
class CpuPeak:
    soc: int
    pcie: int


def cpu_peak(root: RawTable, memory: MemoryInfo) -> CpuPeak:
    chip = root.get_bytes("chip") or b""
    km = root.get_table("kernel_module")
    kb = km.get_binary("binary") if km else None
    kernel = 2 * (kb.size if kb else 0)
    max_cmd = 0
    for p in (p for n in root.get_tables("net") for p in n.get_tables("parameter")):
        groups = list(p.get_tables("cmd_group"))
        for sn in p.get_tables("sub_net"):
            groups += sn.get_tables("cmd_group")
            for cc in sn.get_tables("core_commands"):
                groups += cc.get_tables("gdma_tiu_commands")
        for g in groups:
            for name in ("binary_bdc", "binary_gdma"):
                b = g.get_binary(name)
                max_cmd = max(max_cmd, b.size if b else 0)
    cmd = max_cmd * (2 if chip == b"BM1684X" else 1)
    return CpuPeak(CPU_PEAK_BASE + max(kernel, cmd), CPU_PEAK_BASE + max(kernel, cmd, memory.coeff))


@dataclass(frozen=True)
class Model:
    type: str
    version: str
    time: str  # as stored: ctime() output, usually with a trailing newline
    chip: str
    nets: list[Net]
    neuron_size: int = 0
    device_num: int = 0
    bmodel_type: int = 0
    kernel_module: Module | None = None
    cpuop_module: Module | None = None
    memory: MemoryInfo = field(default_factory=MemoryInfo)
    cpu_peak: CpuPeak = field(default_factory=lambda: CpuPeak(0, 0))
    header: Header | None = None
    file_size: int = 0
    unknown_fields: list[str] = field(default_factory=list)
    aligned_4k: bool = False  # the binary section and every blob in it start on a 4 KiB boundary

    @property
    def bmodel_version(self) -> str:
        """What model_tool prints after ``bmodel version:`` (type.version)."""
        return f"{self.type}.{self.version}"

    def net(self, name: str) -> Net:
        for n in self.nets:
            if n.name == name:
                return n
        raise KeyError(name)


def _tensor(t: RawTable) -> Tensor:
    shapes = [s.get_ints("dim") for s in t.get_tables("shape")]
    code = t.get_int("data_type")
    return Tensor(
        name=t.get_text("name"),
        dtype=dtype_name(code),
        dtype_id=code,
        shape=list(shapes[0]) if shapes else [],
        scale=t.get_float("scale"),
        zero_point=t.get_int("zero_point"),
        size=t.get_int("size"),
        device_addr=t.get_int("device_addr"),
        gmem_stmode=t.get_int("gmem_stmode"),
        mem_type=t.get_int("mem_type"),
        hidden=t.get_int("hidden"),
        index=t.get_int("index"),
        shapes=shapes,
    )


def _stage(i: int, p: RawTable) -> Stage:
    coeff = p.get_table("coeff_mem")
    cb = coeff.get_binary("binary_coeff") if coeff else None
    return Stage(
        index=i,
        inputs=[_tensor(t) for t in p.get_tables("input_tensor")],
        outputs=[_tensor(t) for t in p.get_tables("output_tensor")],
        ctx_addr=p.get_int("ctx_addr"),
        ctx_size=p.get_int("ctx_size"),
        ctx_sizes=p.get_ints("ctx_sizes"),
        coeff_address=coeff.get_int("address") if coeff else 0,
        coeff_size=cb.size if cb else 0,
        coeff_check_code=bytes(coeff.get_ints("check_code")).hex() if coeff else "",
        io_addr=p.get_int("io_addr"),
        io_size=p.get_int("io_size"),
        cpu_mem_size=p.get_int("cpu_mem_size"),
        is_dynamic=p.get_int("is_dynamic") != 0,
        n_dynamic=p.get_int("n_dynamic") != 0,
        h_w_dynamic=p.get_int("h_w_dynamic") != 0,
        subnet_count=len(p.get_tables("sub_net")),
        core_num=p.get_int("core_num"),
        cmd_group_count=len(p.get_tables("cmd_group")),
    )


def _module(t: RawTable | None) -> Module | None:
    if t is None:
        return None
    b = t.get_binary("binary")
    mode = t.get_int("mode") if t.type == "KernelModule" else 0
    return Module(t.get_text("file_name"), b.start if b else 0, b.size if b else 0, mode)


def _buffer_size(t: RawTable) -> int:
    """model_tool's get_tensor_buffer_size: sizeof(int) x the elements of shape[0]."""
    shapes = t.get_tables("shape")
    n = 4
    for d in shapes[0].get_ints("dim") if shapes else []:
        n *= d
    return n


# TPU-MLIR 1.30.2's model_tool counts the I/O middle buffer for BM1684 files and not for BM1684X ones
# (observed: BM1684X "runtime" equals ctx_size); BM1682 is assumed to go with BM1684.
_MIDDLE_BUFFER_CHIPS = (b"BM1684", b"BM1682")


def memory_info(root: RawTable) -> MemoryInfo:
    """model_tool's get_bmodel_mem_info, reimplemented (with its stage-0 quirk, see the module doc)."""
    chip = root.get_bytes("chip") or b""
    coeff = neuron = bd = gdma = middle = dyn_ir = host_coeff = host_neuron = 0
    net_max_neuron = 0
    dev_codes: set[bytes] = set()
    host_codes: set[bytes] = set()
    for net in root.get_tables("net"):
        params = net.get_tables("parameter")
        if not params:
            continue
        neuron = 0  # the vendor resets this per net
        max_neuron = 0
        multi_subnet = False
        for _ in params:
            p = params[0]  # sic: model_tool reads stage 0 for every stage
            subnets = p.get_tables("sub_net")
            max_neuron = max(max_neuron, p.get_int("ctx_size"))
            multi_subnet = multi_subnet or len(subnets) > 1
            cm = p.get_table("coeff_mem")
            if cm is not None:
                code = bytes(cm.get_ints("check_code"))
                if code not in dev_codes:
                    dev_codes.add(code)
                    b = cm.get_binary("binary_coeff")
                    coeff += b.size if b else 0
            for sn in subnets:
                mode = sn.get_int("subnet_mode")
                if mode == 1:
                    cps = sn.get_tables("cpu_param")
                    for cc in cps[0].get_tables("cpu_const") if cps else []:
                        code = bytes(cc.get_ints("check_code"))
                        if code not in host_codes:
                            host_codes.add(code)
                            b = cc.get_binary("const_data")
                            host_coeff += b.size if b else 0
                elif mode == 0:
                    if sn.get_int("is_dynamic"):
                        dyn_ir += sn.get_int("ir_len") * 4
                    else:
                        for g in sn.get_tables("cmd_group"):
                            if chip == b"BM1682":
                                bd += g.get_int("bdc_num") << 8
                                gdma += g.get_int("gdma_num") << 8
                            elif chip == b"BM1684":
                                bd += g.get_int("bdc_num") << 7
                                gdma += g.get_int("gdma_num") << 7
                            else:
                                bb, gb = g.get_binary("binary_bdc"), g.get_binary("binary_gdma")
                                bd += bb.size if bb else 0
                                gdma += gb.size if gb else 0
            host_neuron += p.get_int("cpu_mem_size") * 4
            if chip in _MIDDLE_BUFFER_CHIPS:
                for t in p.get_tables("input_tensor") + p.get_tables("output_tensor"):
                    middle = max(middle, _buffer_size(t))
        if multi_subnet:
            neuron += max_neuron
        else:
            net_max_neuron = max(net_max_neuron, max_neuron)
    neuron += net_max_neuron
    return MemoryInfo(coeff, neuron, bd, gdma, middle, dyn_ir, host_coeff, host_neuron)


def from_raw(root: RawTable, header: Header | None = None, file_size: int = 0) -> Model:
    """The typed model of a decoded ``Model`` table."""
    mem = memory_info(root)
    nets = []
    for i, n in enumerate(root.get_tables("net")):
        c = n.get_table("cascade")
        nets.append(
            Net(
                index=i,
                name=n.get_text("name"),
                stages=[_stage(j, p) for j, p in enumerate(n.get_tables("parameter"))],
                addr_mode=n.get_int("addr_mode"),
                cascade=Cascade(c.get_int("device_id"), c.get_int("step"), c.get_text("main_name")) if c else None,
            )
        )
    return Model(
        type=root.get_text("type"),
        version=root.get_text("version"),
        time=root.get_text("time"),
        chip=root.get_text("chip"),
        nets=nets,
        neuron_size=root.get_int("neuron_size"),
        device_num=root.get_int("device_num"),
        bmodel_type=root.get_int("bmodel_type"),
        kernel_module=_module(root.get_table("kernel_module")),
        cpuop_module=_module(root.get_table("cpuop_module")),
        memory=mem,
        cpu_peak=cpu_peak(root, mem),
        header=header,
        file_size=file_size,
    )


def is_4k_aligned(root: RawTable, header: Header) -> bool:
    """Whether the binary section and every non-empty blob start on a 4 KiB boundary of the file."""
    if header.binary_offset % 4096:
        return False
    return all(b.start % 4096 == 0 for _, b, _ in walk_binaries(root) if b.size)


def from_file(f: BModelFile) -> Model:
    m = from_raw(f.root, f.header, f.file_size)
    return dataclasses.replace(m, unknown_fields=list(f.unknown_fields), aligned_4k=is_4k_aligned(f.root, f.header))
