"""The registry of named schemas (``Field(json_schema_extra={"x-bmfleet-schema": NAME})``).

``"conditions"`` (:func:`~bmfleet.api.crdgen.condition_schema`) is registered by :mod:`bmfleet.api.crdgen.openapi`,
which the package imports, so it is always present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Named schemas usable as ``Field(json_schema_extra={"x-bmfleet-schema": NAME})``.
SCHEMA_OVERRIDES: dict[str, Callable[[], dict[str, Any]]] = {}


def register_schema_override(name: str, factory: Callable[[], dict[str, Any]]) -> None:
    """Make ``factory()`` available as ``{"x-bmfleet-schema": name}`` (names are unique)."""
    if name in SCHEMA_OVERRIDES:
        raise ValueError(f"schema override {name!r} is already registered")
    SCHEMA_OVERRIDES[name] = factory
