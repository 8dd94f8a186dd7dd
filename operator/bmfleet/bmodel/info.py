"""``bmfleet bmodel info``: the same facts as ``model_tool --info``, as text or as JSON.

The text form prints TPU-MLIR 1.30.2 model_tool's lines with its wording (so a diff against the vendor tool
is meaningful), then a short bmfleet block with the container layout and per-stage memory sizes. The
"estimated CPU peak" lines follow an inferred formula (see :func:`bmfleet.bmodel.model.cpu_peak`).
"""

from __future__ import annotations

from typing import Any

from bmfleet.bmodel.model import Model, Net, Tensor, vendor_dtype_name

RULE = "=" * 42


def kernel_mode_name(mode: int) -> str:
    """model_tool's wording: 1 is "rvti", anything else (also the garbage in BM1684 files) "normal"."""
    return "rvti" if mode == 1 else "normal"


def fmt_scale(x: float) -> str:
    """A float the way C++ ``ostream << float`` prints it by default (%g, 6 significant digits)."""
    return f"{x:.6g}"


def _shape(dims: list[int], dynamic: bool) -> str:
    if not dims:
        return "[ ]"
    prefix = "max:" if dynamic else ""
    return "[" + ", ".join(f"{prefix}{d}" for d in dims) + "]"


def tensor_line(t: Tensor, output: bool, dynamic: bool = False) -> str:
    kind = "output" if output else "input"
    return (
        f"{kind}: {t.name}, {_shape(t.shape, dynamic)}, {vendor_dtype_name(t.dtype_id)}, "
        f"scale: {fmt_scale(t.scale)}, zero_point: {t.zero_point}"
    )


def _net_lines(net: Net) -> list[str]:
    lines = [RULE, f"net {net.index}: [{net.name}]  {'dynamic' if net.is_dynamic else 'static'}"]
    if net.addr_mode:
        lines.append(f"addr mode: {net.addr_mode}")
    if net.cascade is not None:
        lines.append(f"device id: {net.cascade.device_id}")
    for st in net.stages:
        lines += ["------------", f"stage {st.index}, core num: {st.core_num}"]
        if st.subnet_count > 1:
            lines.append(f"subnet number: {st.subnet_count}")
        dyn = st.n_dynamic or st.h_w_dynamic
        lines += [tensor_line(t, False, dyn) for t in st.inputs]
        lines += [tensor_line(t, True) for t in st.outputs]
    return lines


def format_text(m: Model, extra: bool = True) -> str:
    """model_tool --info's layout (cascade sub-nets are listed like other nets), then bmfleet's own block."""
    chip = m.chip + (f",  device num: {m.device_num}" if m.device_num > 1 else "")
    lines = [f"bmodel version: {m.bmodel_version}", f"chip: {chip}", f"create time: {m.time}"]
    if m.kernel_module is None:
        lines.append("no kernel_module")
    else:
        lines += [
            f"kernel_module name: {m.kernel_module.file_name}",
            f"kernel_module size: {m.kernel_module.size}",
            f"kernel mode: {kernel_mode_name(m.kernel_module.mode)}",
        ]
    for net in m.nets:
        if net.stages:
            lines += _net_lines(net)
    mem = m.memory
    lines += [
        "",
        f"device mem size: {mem.device_total} (weight: {mem.coeff}, instruct: {mem.instruct}, runtime: {mem.runtime})",
        f"host mem size: {mem.host_total} (weight: {mem.host_coeff}, runtime: {mem.host_neuron})",
        f"estimated SoC CPU peak: {m.cpu_peak.soc}",
        f"estimated PCIE CPU peak: {m.cpu_peak.pcie}",
        "bmodel is 4k aligned" if m.aligned_4k else "bmodel is not 4k aligned",
    ]
    if extra:
        lines += ["", "[bmfleet]"]
        if m.header is not None:
            h = m.header
            lines.append(
                f"file size: {m.file_size} (header: {h.header_size}, flatbuffer: {h.flatbuffers_size}, "
                f"binary: {h.binary_size}, padding: {m.file_size - h.end})"
            )
        lines.append(f"neuron size: {m.neuron_size}")
        for net in m.nets:
            for st in net.stages:
                lines.append(
                    f"net {net.index} [{net.name}] stage {st.index}: ctx_size {st.ctx_size}, coeff {st.coeff_size}, "
                    f"io_size {st.io_size}, cpu_mem_size {st.cpu_mem_size}"
                )
        lines += [f"unknown field: {u}" for u in m.unknown_fields]
    return "\n".join(lines) + "\n"


def _tensor_json(t: Tensor) -> dict[str, Any]:
    return {
        "name": t.name,
        "dtype": t.dtype,
        "dtype_id": t.dtype_id,
        "shape": list(t.shape),
        "scale": t.scale,
        "zero_point": t.zero_point,
        "size": t.size,
        "device_addr": t.device_addr,
        "gmem_stmode": t.gmem_stmode,
        "mem_type": t.mem_type,
    }


def to_json(m: Model) -> dict[str, Any]:
    """Everything `format_text` shows, as plain data (stable keys)."""
    mem = m.memory
    out: dict[str, Any] = {
        "bmodel_version": m.bmodel_version,
        "type": m.type,
        "version": m.version,
        "chip": m.chip,
        "device_num": m.device_num,
        "create_time": m.time.rstrip("\n"),
        "neuron_size": m.neuron_size,
        "bmodel_type": m.bmodel_type,
        "kernel_module": None
        if m.kernel_module is None
        else {
            "name": m.kernel_module.file_name,
            "size": m.kernel_module.size,
            "mode": kernel_mode_name(m.kernel_module.mode),
        },
        "cpuop_module": None
        if m.cpuop_module is None
        else {"name": m.cpuop_module.file_name, "size": m.cpuop_module.size},
        "nets": [
            {
                "index": n.index,
                "name": n.name,
                "dynamic": n.is_dynamic,
                "addr_mode": n.addr_mode,
                "cascade": None
                if n.cascade is None
                else {"device_id": n.cascade.device_id, "step": n.cascade.step, "main_name": n.cascade.main_name},
                "stages": [
                    {
                        "index": s.index,
                        "inputs": [_tensor_json(t) for t in s.inputs],
                        "outputs": [_tensor_json(t) for t in s.outputs],
                        "memory": {
                            "ctx_addr": s.ctx_addr,
                            "ctx_size": s.ctx_size,
                            "ctx_sizes": list(s.ctx_sizes),
                            "coeff_address": s.coeff_address,
                            "coeff_size": s.coeff_size,
                            "coeff_check_code": s.coeff_check_code,
                            "io_addr": s.io_addr,
                            "io_size": s.io_size,
                            "cpu_mem_size": s.cpu_mem_size,
                        },
                        "subnet_count": s.subnet_count,
                        "core_num": s.core_num,
                    }
                    for s in n.stages
                ],
            }
            for n in m.nets
        ],
        "memory": {
            "device_total": mem.device_total,
            "weight": mem.coeff,
            "instruct": mem.instruct,
            "runtime": mem.runtime,
            "host_total": mem.host_total,
            "host_weight": mem.host_coeff,
            "host_runtime": mem.host_neuron,
            "estimated_soc_cpu_peak": m.cpu_peak.soc,
            "estimated_pcie_cpu_peak": m.cpu_peak.pcie,
        },
        "unknown_fields": list(m.unknown_fields),
        "aligned_4k": m.aligned_4k,
    }
    if m.header is not None:
        h = m.header
        out["file"] = {
            "size": m.file_size,
            "magic": f"0x{h.magic:08X}",
            "header_size": h.header_size,
            "flatbuffers_size": h.flatbuffers_size,
            "binary_size": h.binary_size,
            "padding": m.file_size - h.end,
        }
    return out
