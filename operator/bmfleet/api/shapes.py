"""Input shapes: the seed's string form (`[1,3,300,300],[1,10]`) and the list form, normalised to one."""

from __future__ import annotations

import re

Shape = list[int]
StageShapes = list[Shape]

# One input shape: a bracketed, comma-separated list of positive integers. Whitespace is tolerated around
# numbers and commas because people paste shapes from Python reprs. The same pattern guards the CRD.
_DIM = r"\s*[1-9][0-9]{0,8}\s*"
_ONE = rf"\[{_DIM}(?:,{_DIM})*\]"
SHAPE_STRING_PATTERN = rf"^\s*{_ONE}(?:\s*,\s*{_ONE})*\s*$"
_ONE_RE = re.compile(_ONE)
_FULL_RE = re.compile(SHAPE_STRING_PATTERN)


class ShapeError(ValueError):
    """A shape string or list that cannot describe the inputs of one compile stage."""


def parse_shape_string(text: str) -> StageShapes:
    """Parse `[1,3,300,300],[1,10]` into `[[1, 3, 300, 300], [1, 10]]`, naming what is wrong if it fails."""
    if not _FULL_RE.match(text):
        raise ShapeError(
            f"malformed shape string {text!r}: expected one bracketed list of positive integers per input, "
            "e.g. [1,3,300,300],[1,10]"
        )
    return [[int(d) for d in m.group(0).strip("[]").split(",")] for m in _ONE_RE.finditer(text)]


def format_shapes(shapes: StageShapes) -> str:
    """The seed's string form, as `bmnetu -shapes=` takes it (no spaces)."""
    return ",".join("[" + ",".join(str(d) for d in shape) + "]" for shape in shapes)


def validate_shapes(shapes: StageShapes) -> StageShapes:
    """Check the list form: at least one input, each with at least one positive dimension."""
    if not shapes:
        raise ShapeError("a stage needs at least one input shape")
    for i, shape in enumerate(shapes):
        if not shape:
            raise ShapeError(f"input {i} has no dimensions")
        for j, dim in enumerate(shape):
            if dim <= 0:
                raise ShapeError(f"input {i} dimension {j} is {dim}; dimensions must be positive")
    return shapes


def batch_size(shapes: StageShapes) -> int:
    """The batch of a stage: the first dimension of its first input (how bmnetu and the runtime see it)."""
    return shapes[0][0]


def short_text(shapes: StageShapes) -> str:
    """A compact label for tables: `4x3x300x300+1x10`."""
    return "+".join("x".join(str(d) for d in s) for s in shapes)
