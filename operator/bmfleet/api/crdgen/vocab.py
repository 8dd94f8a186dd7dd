"""The error type and the schema vocabulary shared by the transformer and the structural check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final


class CRDSchemaError(ValueError):
    """A model cannot be expressed as a structural CRD schema; ``path`` locates the offending node."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
SCALAR_TYPES: Final = frozenset({"string", "integer", "number", "boolean"})

#: Formats kept per type.  String formats are those the apiserver validates (go-openapi strfmt
#: as listed in the JSONSchemaProps docs, plus the 1.34 ``k8s-short-name``/``k8s-long-name``);
#: since 1.34 an unknown string format is accepted with a warning, so others are dropped.
#: ``duration`` is deliberately absent: pydantic writes ISO 8601 (``PT3S``) while the apiserver
#: expects Go durations (``3s``).  ``base64``/``binary``/``time``/``ipvany*``/``path``... from
#: pydantic are dropped too.
ALLOWED_FORMATS: Final[Mapping[str, frozenset[str]]] = {
    "integer": frozenset({"int32", "int64"}),
    "number": frozenset({"float", "double"}),
    "string": frozenset(
        {
            "bsonobjectid",
            "uri",
            "email",
            "hostname",
            "ipv4",
            "ipv6",
            "cidr",
            "mac",
            "uuid",
            "uuid3",
            "uuid4",
            "uuid5",
            "isbn",
            "isbn10",
            "isbn13",
            "creditcard",
            "ssn",
            "hexcolor",
            "rgbcolor",
            "byte",
            "password",
            "date",
            "date-time",
            "datetime",
            "k8s-short-name",
            "k8s-long-name",
        }
    ),
}

#: Kubernetes vendor extensions accepted in a CRD schema.
K8S_EXTENSIONS: Final = frozenset(
    {
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)

#: Every key of ``apiextensions.k8s.io/v1`` JSONSchemaProps that a CRD may use.
_CRD_SCHEMA_KEYS: Final = (
    frozenset(
        {
            "description",
            "type",
            "format",
            "title",
            "default",
            "maximum",
            "exclusiveMaximum",
            "minimum",
            "exclusiveMinimum",
            "maxLength",
            "minLength",
            "pattern",
            "maxItems",
            "minItems",
            "uniqueItems",
            "multipleOf",
            "enum",
            "maxProperties",
            "minProperties",
            "required",
            "items",
            "allOf",
            "oneOf",
            "anyOf",
            "not",
            "properties",
            "additionalProperties",
            "externalDocs",
            "example",
            "nullable",
        }
    )
    | K8S_EXTENSIONS
)

#: pydantic annotations with no meaning for the apiserver: dropped silently.
_DROPPED_KEYS: Final = frozenset(
    {
        "title",
        "readOnly",
        "writeOnly",
        "deprecated",
        "$comment",
        "$schema",
        "$id",
        "contentEncoding",
        "contentMediaType",
        "discriminator",
    }
)

#: Validation keywords copied verbatim.
_COPIED_KEYS: Final = frozenset(
    {
        "description",
        "minimum",
        "maximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "nullable",
        "example",
        "externalDocs",
    }
)

#: JSON Schema keywords a CRD cannot express: an error, never a silent loss of validation.
_UNSUPPORTED_KEYS: Final = frozenset(
    {
        "prefixItems",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
        "definitions",
    }
)

_CEL_KEYS: Final = frozenset({"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"})
_LIST_TYPES: Final = frozenset({"atomic", "set", "map"})
_MAP_TYPES: Final = frozenset({"granular", "atomic"})
_JUNCTORS: Final = ("allOf", "anyOf", "oneOf")

_MISSING: Final = object()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__
