"""Tiny .bmodel files for agent tests, laid out by hand (stdlib only, so the tests run on the boxes' 3.8).

Header (16 little-endian uint32: magic, header_size, flatbuffers_size, binary_size, 12 zero words), then a
flatbuffer with root Model {type, version, time, chip, net: [Net {name}]}, then filler bytes as the binary
section. The operator's own writer (bmfleet.bmodel) cross-checks this layout in test_bmodel.py.
"""

from __future__ import annotations

import hashlib
import struct
from typing import List, Optional

MAGIC = 0xFF55AAEE


def _pad4(b: bytearray) -> None:
    while len(b) % 4:
        b.append(0)


def _string(s: str) -> bytes:
    raw = s.encode()
    out = bytearray(struct.pack("<I", len(raw)) + raw + b"\0")
    _pad4(out)
    return bytes(out)


def flatbuffer(chip: str, net: str = "tiny", version: str = "2.2+agent-test", omit_chip: bool = False) -> bytes:
    """Root offset, Model vtable, Model table, strings, net vector, Net vtable + table, net name."""
    buf = bytearray(struct.pack("<I", 0))  # root offset, patched below
    fields = 5  # type, version, time, chip, net
    vt_pos = len(buf)
    buf += struct.pack("<HH", 4 + 2 * fields, 4 + 4 * fields) + b"\0" * (2 * fields)
    _pad4(buf)
    table = len(buf)
    struct.pack_into("<I", buf, 0, table)
    buf += struct.pack("<i", table - vt_pos) + b"\0" * (4 * fields)
    values = ["B", version, "Mon Jan  1 00:00:00 2024\n", chip]
    for i, text in enumerate(values):
        if omit_chip and i == 3:
            continue
        field = table + 4 + 4 * i
        struct.pack_into("<H", buf, vt_pos + 4 + 2 * i, field - table)
        struct.pack_into("<I", buf, field, len(buf) - field)
        buf += _string(text)
    # net: vector of one table
    field = table + 4 + 4 * 4
    struct.pack_into("<H", buf, vt_pos + 4 + 2 * 4, field - table)
    struct.pack_into("<I", buf, field, len(buf) - field)
    vec = len(buf)
    buf += struct.pack("<II", 1, 0)
    net_vt = len(buf)
    buf += struct.pack("<HHH", 6, 8, 4) + b"\0\0"
    net_table = len(buf)
    struct.pack_into("<I", buf, vec + 4, net_table - (vec + 4))
    buf += struct.pack("<iI", net_table - net_vt, 0)
    struct.pack_into("<I", buf, net_table + 4, len(buf) - (net_table + 4))
    buf += _string(net)
    return bytes(buf)


def make_bmodel(
    chip: str = "BM1684",
    payload: int = 4096,
    label: str = "v1",
    net: str = "tiny",
    magic: int = MAGIC,
    omit_chip: bool = False,
    truncate: Optional[int] = None,
) -> bytes:
    """A bmodel whose binary section is `payload` deterministic bytes derived from `label`."""
    fb = flatbuffer(chip, net, omit_chip=omit_chip)
    blob = bytearray()
    i = 0
    while len(blob) < payload:
        blob += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    words: List[int] = [magic, 64, len(fb), payload] + [0] * 12
    data = struct.pack("<16I", *words) + fb + bytes(blob[:payload])
    return data if truncate is None else data[:truncate]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
