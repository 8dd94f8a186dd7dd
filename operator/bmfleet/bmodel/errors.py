"""The one exception type this package raises for a bad or unusable bmodel."""

from __future__ import annotations


class BModelError(Exception):
    """A bmodel file is malformed, truncated, inconsistent, or cannot be combined.

    The message says what is wrong and where (file, byte offset, path inside the flatbuffer such as
    ``Model.net[0].parameter[1].input_tensor[0].name``). Callers never see IndexError, struct.error or
    UnicodeDecodeError from this package: those are turned into a BModelError at the boundary.
    """
