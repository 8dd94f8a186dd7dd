"""bmfleet.bmodel: read, verify, describe and combine SOPHGO ``.bmodel`` files, in pure Python.

No vendor SDK: the container and the FlatBuffers schema follow docs/reference/bmodel-format.md, and the
``flatbuffers`` runtime reads and builds the buffer. Every problem with a file surfaces as
:class:`BModelError` with a message that says what and where.

    model = read_model("net.bmodel")          # typed view: chip, version, nets, stages, tensors, memory
    verify("net.bmodel")                      # header, flatbuffer bounds, every Binary inside the file
    combine(["b4.bmodel", "b1.bmodel"], "net.bmodel")   # the vendor's `model_tool --combine` rules
"""

from __future__ import annotations

import os

from bmfleet.bmodel.codec import Binary, RawTable, decode, encode, walk_binaries
from bmfleet.bmodel.combine import CombineReport, combine
from bmfleet.bmodel.container import ALIGNMENT, HEADER_SIZE, MAGIC, BModelFile, Header, load_bytes, open_bmodel
from bmfleet.bmodel.errors import BModelError
from bmfleet.bmodel.info import format_text, to_json
from bmfleet.bmodel.model import (
    DTYPES,
    Cascade,
    MemoryInfo,
    Model,
    Module,
    Net,
    Stage,
    Tensor,
    dtype_name,
    from_file,
    from_raw,
)
from bmfleet.bmodel.writer import BinaryWriter, pack


def read_model(path: str | os.PathLike[str]) -> Model:
    """Open, verify and describe one bmodel file."""
    with open_bmodel(path) as f:
        return from_file(f)


def verify(path: str | os.PathLike[str]) -> Model:
    """Verify `path` (header, flatbuffer, every Binary inside the binary section); BModelError if it is not
    sound. Returns the model it read."""
    return read_model(path)


def read_model_bytes(data: bytes, where: str = "<bytes>") -> Model:
    """:func:`read_model` for a file already in memory."""
    with load_bytes(data, where) as f:
        return from_file(f)


__all__ = [
    "ALIGNMENT",
    "DTYPES",
    "HEADER_SIZE",
    "MAGIC",
    "BModelError",
    "BModelFile",
    "Binary",
    "BinaryWriter",
    "Cascade",
    "CombineReport",
    "Header",
    "MemoryInfo",
    "Model",
    "Module",
    "Net",
    "RawTable",
    "Stage",
    "Tensor",
    "combine",
    "decode",
    "dtype_name",
    "encode",
    "format_text",
    "from_file",
    "from_raw",
    "load_bytes",
    "open_bmodel",
    "pack",
    "read_model",
    "read_model_bytes",
    "to_json",
    "verify",
    "walk_binaries",
]
