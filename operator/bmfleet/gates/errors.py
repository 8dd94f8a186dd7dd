"""The one error the gate library raises for bad inputs, so callers can tell data problems from bugs."""

from __future__ import annotations


class GateInputError(ValueError):
    """Inputs a gate cannot evaluate (unknown ids, malformed boxes, labels out of range, ...); the message
    names the offending item so a user can fix the dataset without reading a traceback."""
