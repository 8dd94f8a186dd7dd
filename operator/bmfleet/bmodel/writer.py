"""Writing bmodel files: a deduplicating binary-section builder and the file writer.

Layout, as TPU-MLIR 1.30.2's ``model_tool`` writes it (observed; docs/reference/tpu-mlir-on-cpu.md says its
files are "4k aligned"): the flatbuffer region is zero-padded so the binary section starts on a 4 KiB
boundary, every blob starts on a 4 KiB boundary inside the section, and the section's size is a multiple of
4 KiB, so the whole file is too. ``align=1`` gives the older, packed layout of the reference page (§1).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bmfleet.bmodel.codec import Binary, RawTable, encode
from bmfleet.bmodel.container import ALIGNMENT, HEADER_SIZE, make_header
from bmfleet.bmodel.errors import BModelError


def align_up(n: int, align: int) -> int:
    return n if align <= 1 else (n + align - 1) // align * align


class BinaryWriter:
    """An in-memory binary section (ModelGen::WriteBinary): :meth:`add` appends a blob at the next `align`
    boundary, or returns the identical blob already there. An empty blob is ``Binary(0, 0)``."""

    def __init__(self, align: int = ALIGNMENT) -> None:
        self.align = align
        self._buf = bytearray()
        self._seen: dict[tuple[int, bytes], int] = {}

    def add(self, data: bytes | bytearray | memoryview) -> Binary:
        if len(data) == 0:
            return Binary(0, 0)
        key = (len(data), hashlib.sha256(data).digest())
        start = self._seen.get(key)
        if start is None:
            start = align_up(len(self._buf), self.align)
            self._buf += b"\0" * (start - len(self._buf))
            self._buf += data
            self._seen[key] = start
        return Binary(start, len(data))

    @property
    def data(self) -> bytes:
        """The section, zero-padded to a multiple of `align`."""
        return bytes(self._buf) + b"\0" * (align_up(len(self._buf), self.align) - len(self._buf))

    def __len__(self) -> int:
        return align_up(len(self._buf), self.align)


def padded_flatbuffer(fb: bytes, align: int) -> bytes:
    """`fb` with zeros appended so the binary section after it starts on an `align` boundary."""
    return fb + b"\0" * (align_up(HEADER_SIZE + len(fb), align) - HEADER_SIZE - len(fb))


def pack(root: RawTable, binary: bytes, align: int = ALIGNMENT) -> bytes:
    """A complete bmodel file in memory: header, flatbuffer of `root` and `binary`, laid out for `align`."""
    fb = padded_flatbuffer(encode(root), align)
    binary = binary + b"\0" * (align_up(len(binary), align) - len(binary))
    return make_header(len(fb), len(binary)).pack() + fb + binary


def write_file(
    path: str | os.PathLike[str],
    fb: bytes,
    binary_size: int,
    chunks: Iterable[bytes | memoryview],
    align: int = ALIGNMENT,
) -> int:
    """Write header + `fb` (padded for `align`) + the binary section (`chunks`, `binary_size` bytes in all).

    Atomic: the file appears under its name only once complete. Returns the file size.
    """
    out = Path(path)
    fb = padded_flatbuffer(fb, align)
    head = make_header(len(fb), binary_size).pack()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
            fh.write(fb)
            written = 0
            for c in chunks:
                written += fh.write(c)
        if written != binary_size:
            raise BModelError(f"{out}: binary section came out as {written} bytes, expected {binary_size}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(head) + len(fb) + written
