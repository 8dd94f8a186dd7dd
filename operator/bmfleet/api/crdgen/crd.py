"""CRD assembly: :class:`PrinterColumn`, :class:`CRDSpec` and :func:`build_crd`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from bmfleet.api.crdgen.openapi import openapi_schema
from bmfleet.api.crdgen.structural import assert_structural

_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_VERSION: Final = re.compile(r"^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$")
_COLUMN_TYPES: Final = frozenset({"integer", "number", "string", "boolean", "date"})
_COLUMN_FORMATS: Final = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time", "password"})


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry (``kubectl get``); ``priority > 0``: only with ``-o wide``."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _COLUMN_TYPES:
            raise ValueError(f"printer column {self.name!r}: type must be one of {sorted(_COLUMN_TYPES)}")
        if self.format is not None and self.format not in _COLUMN_FORMATS:
            raise ValueError(f"printer column {self.name!r}: format must be one of {sorted(_COLUMN_FORMATS)}")
        if not self.json_path.startswith("."):
            raise ValueError(f"printer column {self.name!r}: jsonPath must start with '.'")
        if self.priority < 0:
            raise ValueError(f"printer column {self.name!r}: priority must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.format is not None:
            out["format"] = self.format
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE_COLUMN: Final = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


@dataclass(frozen=True)
class CRDSpec:
    """Names and presentation of one custom resource (one served+storage version)."""

    group: str
    kind: str
    plural: str
    singular: str
    version: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    scope: str = "Namespaced"
    printer_columns: tuple[PrinterColumn, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if "." not in self.group or self.group != self.group.lower():
            raise ValueError(f"group {self.group!r} must be a lowercase DNS domain")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", self.kind):
            raise ValueError(f"kind {self.kind!r} must be PascalCase")
        for what, name in (
            ("plural", self.plural),
            ("singular", self.singular),
            *(("short name", s) for s in self.short_names),
            *(("category", c) for c in self.categories),
        ):
            if not _DNS1035.match(name):
                raise ValueError(f"{what} {name!r} must be a lowercase DNS-1035 label")
        if not _VERSION.match(self.version):
            raise ValueError(f"version {self.version!r} must look like v1, v1beta1, v1alpha2")
        if self.scope not in ("Namespaced", "Cluster"):
            raise ValueError(f"scope {self.scope!r} must be Namespaced or Cluster")

    @property
    def name(self) -> str:
        """The CRD's ``metadata.name``: ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"


def build_crd(spec: CRDSpec, spec_model: type[BaseModel], status_model: type[BaseModel]) -> dict[str, Any]:
    """The CustomResourceDefinition for ``spec``: ``.spec`` from ``spec_model`` (validation mode),
    ``.status`` from ``status_model`` (serialization mode: the apiserver validates what the
    operator writes, i.e. ``model_dump(mode="json", by_alias=True)``), status subresource on,
    printer columns plus ``Age``.  The result has passed :func:`assert_structural`."""
    spec_schema = openapi_schema(spec_model, mode="validation")
    status_schema = openapi_schema(status_model, mode="serialization")
    spec_schema.setdefault("description", f"Desired state of the {spec.kind}.")
    status_schema.setdefault("description", f"Observed state of the {spec.kind}, written by the operator.")

    root: dict[str, Any] = {
        "description": spec.description or f"{spec.kind} is a {spec.group} custom resource.",
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion is the versioned schema of this object (group/version).",
                "type": "string",
            },
            "kind": {
                "description": "Kind is the REST resource this object represents, in CamelCase.",
                "type": "string",
            },
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }
    assert_structural(root, crd_root=True)

    columns = [c.to_dict() for c in spec.printer_columns]
    if not any(c.name == AGE_COLUMN.name for c in spec.printer_columns):
        columns.append(AGE_COLUMN.to_dict())

    names: dict[str, Any] = {
        "kind": spec.kind,
        "listKind": f"{spec.kind}List",
        "plural": spec.plural,
        "singular": spec.singular,
    }
    if spec.short_names:
        names["shortNames"] = list(spec.short_names)
    if spec.categories:
        names["categories"] = list(spec.categories)

    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": spec.name},
        "spec": {
            "group": spec.group,
            "names": names,
            "scope": spec.scope,
            "versions": [
                {
                    "name": spec.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }
