"""Small synthetic bmodels, built with this package's own writer, for tests and demos.

They have the shape of TPU-MLIR output (one net, one stage; coefficients, BDC and GDMA command blobs
referenced from both ``NetParameter.cmd_group`` and the stage's single sub-net; empty KernelModule and
CpuopModule tables), but the blobs are filler bytes: no runtime can execute them.
"""

from __future__ import annotations

import hashlib
import time as _time
from dataclasses import dataclass, field

from bmfleet.bmodel.codec import Binary, RawTable
from bmfleet.bmodel.container import ALIGNMENT
from bmfleet.bmodel.writer import BinaryWriter, pack

VERSION = "2.2+bmfleet-synthetic"
CTX_ADDR = 0x1_0000_0000


def filler(label: str, size: int) -> bytes:
    """`size` deterministic pseudo-random bytes derived from `label`."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def tensor(
    name: str,
    shape: list[int],
    dtype: int = 0,
    scale: float = 1.0,
    zero_point: int = 0,
    **extra: int,
) -> RawTable:
    t = RawTable("Tensor", {"name": name.encode(), "shape": [RawTable("Shape", {"dim": list(shape)})]})
    if dtype:
        t.set("data_type", dtype)
    if scale != 1.0:
        t.set("scale", scale)
    if zero_point:
        t.set("zero_point", zero_point)
    for k, v in extra.items():
        t.set(k, v)
    return t


@dataclass
class StageSpec:
    """One stage: the inputs/outputs and how big its blobs are."""

    inputs: list[tuple[str, list[int]]]
    outputs: list[tuple[str, list[int]]]
    in_dtype: int = 0
    out_dtype: int = 0
    in_scale: float = 1.0
    in_zero_point: int = 0
    weights: bytes = b""  # coefficient blob (shared by stages compiled from the same model)
    bdc_size: int = 640
    gdma_size: int = 384
    ctx_size: int = 0  # 0: derived from the tensor sizes
    label: str = ""  # seeds the command filler; defaults to the shapes
    extra: dict[str, int] = field(default_factory=dict)  # more NetParameter scalars


def _elements(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def stage(spec: StageSpec, bw: BinaryWriter) -> RawTable:
    label = spec.label or repr((spec.inputs, spec.outputs))
    addr = CTX_ADDR
    ins, outs = [], []
    for i, (name, shape) in enumerate(spec.inputs):
        size = 4 * _elements(shape)
        ins.append(
            tensor(
                name, shape, spec.in_dtype, spec.in_scale, spec.in_zero_point,
                device_addr=addr, size=size, mem_type=1, hidden=1, index=i,
            )
        )  # fmt: skip
        addr += size
    for i, (name, shape) in enumerate(spec.outputs):
        size = 4 * _elements(shape)
        outs.append(tensor(name, shape, spec.out_dtype, device_addr=addr, size=size, mem_type=1, hidden=2, index=i))
        addr += size
    ctx = spec.ctx_size or max(4096, addr - CTX_ADDR)
    bdc = bw.add(filler(f"bdc/{label}", spec.bdc_size))
    gdma = bw.add(filler(f"gdma/{label}", spec.gdma_size))

    def cmd() -> RawTable:
        return RawTable(
            "CmdGroup",
            {
                "bdc_num": spec.bdc_size // 128,
                "gdma_num": spec.gdma_size // 128,
                "binary_bdc": bdc,
                "binary_gdma": gdma,
                "bdc_cmd_byte": spec.bdc_size,
                "gdma_cmd_byte": spec.gdma_size,
            },
        )

    p = RawTable(
        "NetParameter",
        {
            "input_tensor": ins,
            "output_tensor": outs,
            "ctx_addr": CTX_ADDR,
            "ctx_size": ctx,
            "cmd_group": [cmd()],
            "stage_ir": [RawTable("StageIR")],
            "binary_ir": Binary(0, 0),
            "sub_net": [
                RawTable(
                    "SubNet",
                    {
                        "cmd_group": [cmd()],
                        "input_tensor": [t.copy() for t in ins],
                        "output_tensor": [t.copy() for t in outs],
                        "id": 0,
                        "next_subnet_ids": [-1],
                        "run_core": 1,
                    },
                )
            ],
            "ctx_sizes": [ctx],
            "core_num": 1,
        },
    )
    if spec.weights:
        p.set(
            "coeff_mem",
            RawTable(
                "CoeffMem",
                {
                    "address": CTX_ADDR - len(spec.weights),
                    "check_code": list(hashlib.sha256(spec.weights).digest()),
                    "binary_coeff": bw.add(spec.weights),
                    "location": [RawTable("Location", {"name": b"weights", "size": len(spec.weights)})],
                },
            ),
        )
    for k, v in spec.extra.items():
        p.set(k, v)
    return p


def model(
    nets: list[tuple[str, list[StageSpec]]],
    chip: str = "BM1684X",
    kernel: bytes = b"",
    kernel_name: str = "libbm1684x_kernel_module.so",
    kernel_mode: int | None = None,
    create_time: str | None = None,
    align: int = ALIGNMENT,
) -> bytes:
    """A complete bmodel file. `kernel_mode` None leaves the field out (0)."""
    bw = BinaryWriter(align)
    km = RawTable("KernelModule", {"file_name": kernel_name.encode() if kernel else b"", "binary": bw.add(kernel)})
    if kernel_mode is not None:
        km.set("mode", kernel_mode)
    net_tables = []
    ctx_max = 0
    for name, specs in nets:
        params = [stage(s, bw) for s in specs]
        ctx_max = max([ctx_max] + [p.get_int("ctx_size") for p in params])
        net_tables.append(RawTable("Net", {"name": name.encode(), "parameter": params}))
    root = RawTable(
        "Model",
        {
            "type": b"B",
            "version": VERSION.encode(),
            "time": (create_time if create_time is not None else _time.ctime() + "\n").encode(),
            "chip": chip.encode(),
            "net": net_tables,
            "neuron_size": ctx_max,
            "kernel_module": km,
            "device_num": 1,
            "cpuop_module": RawTable("CpuopModule", {"file_name": b"", "binary": Binary(0, 0)}),
            "lib_backend": Binary(0, 0),
        },
    )
    return pack(root, bw.data, align)


def classifier(
    name: str = "tiny",
    batch: int = 1,
    chip: str = "BM1684X",
    weights: bytes | None = None,
    kernel: bytes | None = None,
    kernel_mode: int | None = None,
    align: int = ALIGNMENT,
    **stage_args: object,
) -> bytes:
    """One net `name`, one stage: input ``input`` [batch,3,32,32] float32, output ``output`` [batch,10].

    Stages of the same `name` at different batches share `weights` (default: derived from `name`), like
    batch variants compiled from one model. `kernel` defaults to a 64 KiB filler for BM1684X and none for
    BM1684.
    """
    w = weights if weights is not None else filler(f"weights/{name}", 3000)
    k = kernel if kernel is not None else (filler("kernel", 65536) if chip != "BM1684" else b"")
    spec = StageSpec(
        inputs=[("input", [batch, 3, 32, 32])],
        outputs=[("output", [batch, 10])],
        weights=w,
        label=f"{name}/{batch}",
        **stage_args,  # type: ignore[arg-type]
    )
    return model([(name, [spec])], chip=chip, kernel=k, kernel_mode=kernel_mode, align=align)
