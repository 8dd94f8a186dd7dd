"""The little of the .bmodel format the agent needs: header checks and ``Model.chip`` / ``type`` / ``version``.

Reads only the 64-byte header and the flatbuffer (docs/reference/bmodel-format.md §1-2); the binary section,
which holds the weights and can be gigabytes, is never read. Every offset is bounds-checked because the
Python side has no flatbuffers verifier.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Optional

MAGIC = 0xFF55AAEE
OLD_MAGIC = 0xFF55AAFF
PLAIN_HEADER_SIZE = 64
_MIN_HEADER = 16
MAX_HEADER = 1 << 16
MAX_FLATBUFFER = 64 << 20  # a flatbuffer this large is not a bmodel header we want to hold in memory

# Model table field ids (bmodel.fbs): type 0, version 1, time 2, chip 3, net 4.
_TYPE, _VERSION, _CHIP, _NET = 0, 1, 3, 4

# The runtime accepts these legacy chip names on the chip in the key (bmodel-format.md §2, Model.chip).
CHIP_ALIASES = {"BM1684X": ("BM1686",), "BM1688": ("CV186X",)}
KNOWN_CHIPS = frozenset({"BM1684", "BM1684X", "BM1688", "CV186X", "BM1690", "MARS3", "SG2380"})


class BModelError(Exception):
    """The file is not a readable bmodel; the message says where it broke."""


class BModelInfo(NamedTuple):
    chip: str
    type: str
    version: str
    nets: int
    header_size: int
    flatbuffers_size: int
    binary_size: int


def chip_compatible(model_chip: str, device_chip: str) -> bool:
    """Whether a model built for `model_chip` runs on `device_chip` (case-insensitive, with aliases)."""
    m, d = model_chip.strip().upper(), device_chip.strip().upper()
    return m == d or m in CHIP_ALIASES.get(d, ())


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def u32(self, pos: int, what: str) -> int:
        if pos < 0 or pos + 4 > len(self.data):
            raise BModelError(f"flatbuffer: {what} at {pos} lies outside the {len(self.data)}-byte flatbuffer")
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def i32(self, pos: int, what: str) -> int:
        v = self.u32(pos, what)
        return v - (1 << 32) if v >= 1 << 31 else v

    def u16(self, pos: int, what: str) -> int:
        if pos < 0 or pos + 2 > len(self.data):
            raise BModelError(f"flatbuffer: {what} at {pos} lies outside the flatbuffer")
        return int(struct.unpack_from("<H", self.data, pos)[0])

    def field(self, table: int, field_id: int, what: str) -> Optional[int]:
        """Absolute position of a table field, or None when the vtable leaves it out."""
        vtable = table - self.i32(table, f"{what}: vtable offset")
        vt_size = self.u16(vtable, f"{what}: vtable size")
        slot = 4 + 2 * field_id
        if vt_size < 4 or slot + 2 > vt_size:
            return None
        off = self.u16(vtable + slot, f"{what}: vtable slot")
        return table + off if off else None

    def deref(self, pos: int, what: str) -> int:
        return pos + self.u32(pos, what)

    def string(self, table: int, field_id: int, what: str) -> str:
        pos = self.field(table, field_id, what)
        if pos is None:
            raise BModelError(f"flatbuffer: required field Model.{what} is missing")
        start = self.deref(pos, what)
        n = self.u32(start, f"{what} length")
        if start + 4 + n > len(self.data):
            raise BModelError(f"flatbuffer: string Model.{what} ({n} bytes) runs past the flatbuffer")
        try:
            return self.data[start + 4 : start + 4 + n].decode("utf-8")
        except UnicodeDecodeError as e:
            raise BModelError(f"flatbuffer: Model.{what} is not UTF-8") from e


def parse(head: bytes, file_size: int) -> BModelInfo:
    """Parse a header and flatbuffer. `head` must start at offset 0 and hold at least both of them."""
    if file_size <= PLAIN_HEADER_SIZE or len(head) < _MIN_HEADER:
        raise BModelError(f"file is {file_size} bytes, not larger than the {PLAIN_HEADER_SIZE}-byte header")
    magic, header_size, fb_size, bin_size = struct.unpack_from("<4I", head, 0)
    if magic != MAGIC:
        old = " (old bmtap2 format)" if magic == OLD_MAGIC else ""
        raise BModelError(f"bad magic 0x{magic:08X}, expected 0x{MAGIC:08X}{old}")
    if header_size < _MIN_HEADER or header_size > MAX_HEADER:
        raise BModelError(f"header_size {header_size} is implausible")
    if header_size + fb_size + bin_size > file_size:
        raise BModelError(
            f"truncated: header {header_size} + flatbuffer {fb_size} + binary {bin_size} bytes > file size {file_size}"
        )
    if fb_size < 8 or fb_size > MAX_FLATBUFFER:
        raise BModelError(f"flatbuffers_size {fb_size} is implausible")
    if len(head) < header_size + fb_size:
        raise BModelError("flatbuffer not fully read")
    buf = _Buf(bytes(head[header_size : header_size + fb_size]))
    try:
        root = buf.deref(0, "root offset")
        chip = buf.string(root, _CHIP, "chip")
    except BModelError as e:
        if header_size != PLAIN_HEADER_SIZE:  # the encrypted variant grows the header (format §1)
            raise BModelError(f"{e} (header_size {header_size}: an encrypted bmodel?)") from e
        raise
    kind = buf.string(root, _TYPE, "type")
    version = buf.string(root, _VERSION, "version")
    net_pos = buf.field(root, _NET, "net")
    if net_pos is None:
        raise BModelError("flatbuffer: required field Model.net is missing")
    nets = buf.u32(buf.deref(net_pos, "net"), "net count")
    if nets == 0:
        raise BModelError("flatbuffer: Model.net is empty")
    return BModelInfo(chip, kind, version, nets, header_size, fb_size, bin_size)


def read_info(path: str) -> BModelInfo:
    """Read the header and flatbuffer of the bmodel at `path` (not the binary section)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        head = f.read(_MIN_HEADER)
        if len(head) == _MIN_HEADER:
            _, header_size, fb_size, _ = struct.unpack_from("<4I", head, 0)
            if _MIN_HEADER <= header_size <= MAX_HEADER and 0 < fb_size <= MAX_FLATBUFFER:
                head += f.read(header_size + fb_size - _MIN_HEADER)
    return parse(head, size)
