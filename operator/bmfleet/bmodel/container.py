"""The bmodel container: header, flatbuffer, binary section (docs/reference/bmodel-format.md §1).

:func:`open_bmodel` maps a file, checks the header, decodes and verifies the flatbuffer and checks that every
``Binary`` lies inside the binary section. Blobs are read lazily from the mapping, so a multi-GB file costs
only its flatbuffer in memory.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bmfleet.bmodel.codec import Binary, RawTable, decode, walk_binaries, walk_unknown
from bmfleet.bmodel.errors import BModelError

MAGIC = 0xFF55AAEE
OLD_MAGIC = 0xFF55AAFF  # bmtap2's format, which this package does not read
HEADER_WORDS = 16
HEADER_SIZE = 4 * HEADER_WORDS  # what writers put in header_size; readers use the stored value
ALIGNMENT = 4096  # model_tool pads the files it writes to a multiple of this ("bmodel is 4k aligned")
_HEADER = struct.Struct(f"<{HEADER_WORDS}I")
_MIN_HEADER = 16  # magic, header_size, flatbuffers_size, binary_size


@dataclass(frozen=True)
class Header:
    magic: int
    header_size: int
    flatbuffers_size: int
    binary_size: int
    reserved: tuple[int, ...]

    @property
    def binary_offset(self) -> int:
        """File offset of the binary section (``Binary.start`` is relative to it)."""
        return self.header_size + self.flatbuffers_size

    @property
    def end(self) -> int:
        return self.binary_offset + self.binary_size

    def pack(self) -> bytes:
        words = [self.magic, self.header_size, self.flatbuffers_size, self.binary_size, *self.reserved]
        words = (words + [0] * HEADER_WORDS)[:HEADER_WORDS]
        return _HEADER.pack(*words)


def make_header(flatbuffers_size: int, binary_size: int) -> Header:
    for name, v in (("flatbuffers_size", flatbuffers_size), ("binary_size", binary_size)):
        if v >= 2**32:
            raise BModelError(f"{name} {v} does not fit the header's uint32 (sections must be < 4 GiB)")
    return Header(MAGIC, HEADER_SIZE, flatbuffers_size, binary_size, (0,) * (HEADER_WORDS - 4))


def parse_header(data: bytes | memoryview | mmap.mmap, where: str = "bmodel") -> Header:
    """Check the header words against the length of `data` (the whole file)."""
    n = len(data)
    if n < HEADER_SIZE:
        raise BModelError(f"{where}: file is {n} bytes, shorter than the {HEADER_SIZE}-byte header")
    words = _HEADER.unpack_from(data, 0)
    magic, header_size, fb_size, bin_size = words[:4]
    if magic != MAGIC:
        hint = " (old bmtap2 format, not supported)" if magic == OLD_MAGIC else ""
        raise BModelError(f"{where}: bad magic 0x{magic:08X} at offset 0, expected 0x{MAGIC:08X}{hint}")
    if header_size < _MIN_HEADER:
        raise BModelError(f"{where}: header_size {header_size} (offset 4) is smaller than {_MIN_HEADER}")
    if fb_size < 4:
        raise BModelError(f"{where}: flatbuffers_size {fb_size} (offset 8) is too small for a flatbuffer")
    end = header_size + fb_size + bin_size
    if end > n:
        raise BModelError(
            f"{where}: truncated or bad sizes: header_size {header_size} + flatbuffers_size {fb_size} + "
            f"binary_size {bin_size} = {end} bytes, but the file has {n}"
        )
    nres = min(HEADER_WORDS, header_size // 4) - 4
    return Header(magic, header_size, fb_size, bin_size, tuple(words[4 : 4 + max(0, nres)]))


def check_binaries(root: RawTable, binary_size: int, where: str = "bmodel") -> None:
    """Every Binary must lie inside the binary section."""
    for path, b, _ in walk_binaries(root):
        if b.start + b.size > binary_size:
            raise BModelError(
                f"{where}: {path} = {{start {b.start}, size {b.size}}} ends at {b.start + b.size}, "
                f"past the binary section ({binary_size} bytes)"
            )


class BModelFile:
    """An open, verified bmodel: header, decoded flatbuffer (`root`), and lazy access to blobs."""

    def __init__(self, data: bytes | mmap.mmap, where: str, owner: object = None) -> None:
        self.where = where
        self._data: bytes | mmap.mmap | None = data
        self._owner = owner
        self.file_size = len(data)
        self.header = parse_header(data, where)
        h = self.header
        fb = bytes(data[h.header_size : h.header_size + h.flatbuffers_size])
        try:
            self.root: RawTable = decode(fb)
        except BModelError as e:
            hint = ""
            if h.header_size != HEADER_SIZE or any(h.reserved):
                hint = " (header_size or reserved words are unusual: an encrypted bmodel is not supported)"
            raise BModelError(f"{where}: flatbuffer at offset {h.header_size}: {e}{hint}") from None
        check_binaries(self.root, h.binary_size, where)
        self.unknown_fields: list[str] = list(walk_unknown(self.root))

    @property
    def trailing_bytes(self) -> int:
        """Bytes after the binary section (model_tool pads to 4 KiB)."""
        return self.file_size - self.header.end

    def blob(self, b: Binary) -> memoryview:
        """The bytes of one Binary (a view into the file; valid until close)."""
        if self._data is None:
            raise BModelError(f"{self.where}: file is closed")
        if b.start + b.size > self.header.binary_size:
            raise BModelError(f"{self.where}: Binary {{start {b.start}, size {b.size}}} is outside the binary section")
        off = self.header.binary_offset + b.start
        return memoryview(self._data)[off : off + b.size]

    def close(self) -> None:
        data, self._data = self._data, None
        if isinstance(data, mmap.mmap):
            with contextlib.suppress(BufferError):  # a blob view is still alive; the mapping goes with it
                data.close()

    def __enter__(self) -> BModelFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_bmodel(path: str | os.PathLike[str]) -> BModelFile:
    """Open and verify `path`; BModelError says what is wrong and where."""
    p = Path(path)
    where = str(p)
    try:
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < HEADER_SIZE:
                return BModelFile(fh.read(), where)
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise BModelError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        return BModelFile(data, where)
    except BaseException:
        data.close()
        raise


def load_bytes(data: bytes, where: str = "<bytes>") -> BModelFile:
    """Verify an in-memory bmodel."""
    return BModelFile(bytes(data), where)
