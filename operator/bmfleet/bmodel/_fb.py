"""The `flatbuffers` package, imported without numpy.

flatbuffers' Python runtime imports numpy at import time when it is installed (`compat.import_numpy()` in
builder, table, encode and number_types, since google/flatbuffers#4390), which costs ~0.1 s of
every `bmfleet bmodel` run, more than a whole vendor `model_tool --combine`. We never use its numpy helpers, so
its probe for numpy is told there is none while the package loads. A process that already imported numpy keeps it.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def without_numpy() -> Iterator[None]:
    """While flatbuffers loads, its numpy probe (`PathFinder.find_spec("numpy")`) finds nothing."""
    if "numpy" in sys.modules or "flatbuffers.builder" in sys.modules:
        yield
        return
    finder = importlib.machinery.PathFinder
    original = finder.__dict__["find_spec"]

    def find_spec(cls: type, name: str, path: Any = None, target: Any = None) -> Any:
        return None if name == "numpy" else original.__func__(cls, name, path, target)

    finder.find_spec = classmethod(find_spec)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        finder.find_spec = original  # type: ignore[method-assign]


with without_numpy():
    import flatbuffers  # type: ignore[import-untyped]

__all__ = ["flatbuffers", "without_numpy"]
