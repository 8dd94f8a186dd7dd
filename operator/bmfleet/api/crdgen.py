"""Generate ``apiextensions.k8s.io/v1`` CustomResourceDefinitions from pydantic v2 models.

The pydantic models in :mod:`bmfleet.api` are the single source of truth for the CRD
schemas (operator conventions §2.1).  pydantic's ``model_json_schema()`` is JSON Schema
2020-12, which the apiserver does not accept as is, so :func:`openapi_schema` rewrites it
into a *structural* OpenAPI v3 schema:

* every ``$ref``/``$defs`` is inlined (recursive models raise :class:`CRDSchemaError`);
  a field-level ``description``/extra next to a ``$ref`` (or in ``allOf: [{$ref}]``) lands on
  the field's own node; ``x-kubernetes-validations`` of the field and of the model are concatenated;
* ``Optional[X]`` (``anyOf: [X, {type: null}]``) becomes ``X``.  ``nullable: true`` is added
  only where dropping a ``null`` would change the meaning: a required ``Optional`` field,
  an ``Optional`` field whose default is not ``None``, and ``Optional`` list items / map
  values.  (The apiserver prunes ``null`` from non-nullable fields, so ``x: X | None = None``
  round-trips as "absent").
* unions: ``int | str`` -> ``x-kubernetes-int-or-string``; unions of literals / enums of
  one scalar type -> one ``enum``; any other ``anyOf``/``oneOf`` raises, naming the field
  (escape hatch: ``Field(json_schema_extra=PRESERVE_UNKNOWN_FIELDS)`` makes it opaque);
* ``title``, ``readOnly``, ``writeOnly``, ``deprecated`` and ``default: null`` are dropped,
  ``const`` becomes a one-value ``enum``, ``examples[0]`` becomes ``example``;
  draft-2020 numeric ``exclusiveMinimum/Maximum`` become draft-4 ``minimum`` + ``exclusive*: true``;
* ``format`` is kept only where the apiserver knows it (see :data:`ALLOWED_FORMATS`);
* ``additionalProperties: false`` (``extra="forbid"``) is dropped (unknown fields are pruned);
  ``additionalProperties: true`` (``dict[str, Any]``, ``extra="allow"``) becomes
  ``x-kubernetes-preserve-unknown-fields: true``; ``Any`` becomes an untyped preserve node;
* ``set[X]`` (``uniqueItems``, forbidden in CRDs) becomes ``x-kubernetes-list-type: set``;
* map-key constraints (``propertyNames``/``patternProperties``, from
  ``dict[Annotated[str, Field(max_length=..., pattern=...)], V]``) become one CEL rule
  ``self.all(k, ...)`` on the map (CRDs have neither keyword);
* ``list[Condition]`` gets ``x-kubernetes-list-type: map`` keyed by ``type``;
* ``Field(json_schema_extra={"x-bmfleet-schema": NAME})`` replaces the field's schema by a
  registered one (:data:`SCHEMA_OVERRIDES`, e.g. ``"conditions"``).

Anything else that has no structural form (unions of objects, tuples, recursion, ``not``,
``if``/``then``...) raises :class:`CRDSchemaError` with the field path
(``WidgetSpec.targets[*].name``); nothing is dropped silently except pure annotations.

Defaults: a non-null ``default`` is kept (nested ``null`` values removed).  A field whose
``default_factory`` builds a *model* gets ``default:`` that model dumped with
``exclude_defaults=True`` -- for ``Field(default_factory=Sub)`` that is ``{}`` -- so that
the apiserver creates the object and then applies the nested schema defaults itself (and
``kubectl get -o yaml`` shows the effective values).  Other factories (``list``, ``dict``)
produce no schema default: an absent value means the same thing to pydantic.

:func:`assert_structural` checks the result (and the defaults against it) the way the
apiserver would; :func:`build_crd` wraps a spec and a status model into a CRD and
:func:`dump_yaml` writes deterministic multi-document YAML.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from bmfleet.api.schema_extras import (
    CEL_REASONS,
    CONDITION_MARKER,
    SCHEMA_OVERRIDE_KEY,
    Condition,
)

__all__ = [
    "ALLOWED_FORMATS",
    "SCHEMA_OVERRIDES",
    "CRDSchemaError",
    "CRDSpec",
    "Condition",
    "PrinterColumn",
    "assert_structural",
    "build_crd",
    "condition_schema",
    "dump_yaml",
    "openapi_schema",
    "register_schema_override",
]


class CRDSchemaError(ValueError):
    """A model cannot be expressed as a structural CRD schema; ``path`` locates the offending node."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# pydantic -> JSON schema (with model default factories)
# --------------------------------------------------------------------------------------------


class _CRDJsonSchema(GenerateJsonSchema):
    """pydantic's generator, plus ``default`` for fields whose ``default_factory`` builds a model."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        factory = schema.get("default_factory")
        if factory is None or "default" in json_schema or schema.get("default_factory_takes_data"):
            return json_schema
        try:
            value = cast(Callable[[], Any], factory)()
        except Exception:  # a factory that needs context: no schema default, pydantic still applies it
            return json_schema
        if isinstance(value, BaseModel):
            # Only what differs from the nested defaults: the apiserver fills in the rest.
            json_schema["default"] = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return json_schema


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a referenced definition) overridden by ``overlay`` (the field's siblings)."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if key == "x-kubernetes-validations" and key in out:
            out[key] = [*out[key], *copy.deepcopy(value)]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_null_branch(branch: Any) -> bool:
    return isinstance(branch, dict) and branch.get("type") == "null" and set(branch) <= {"type", "title"}


def _validation_keys(node: Mapping[str, Any]) -> set[str]:
    return set(node) - _DROPPED_KEYS - {"description", "examples", "example"}


class _Transformer:
    """Rewrites one pydantic JSON schema; ``path`` arguments are field paths for error messages."""

    def __init__(self, defs: Mapping[str, Any]) -> None:
        self._defs = defs

    # -- entry point for any schema node ---------------------------------------------------
    def node(
        self, raw: Mapping[str, Any], path: str, stack: tuple[str, ...], *, null_prunable: bool = False
    ) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise CRDSchemaError(path, f"expected a schema object, got {raw!r}")
        if SCHEMA_OVERRIDE_KEY in raw:
            return self._override(raw, path)
        if raw.get("x-kubernetes-preserve-unknown-fields") is True and (
            "$ref" in raw or any(j in raw for j in _JUNCTORS)
        ):
            return self._opaque(raw, path)
        schema, stack = self._resolve(raw, path, stack)
        if "anyOf" in schema or "oneOf" in schema:
            return self._union(schema, path, stack, null_prunable=null_prunable)
        return self._plain(schema, path, stack)

    # -- $ref / allOf: [{$ref}] ------------------------------------------------------------
    def _resolve(
        self, raw: Mapping[str, Any], path: str, stack: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        schema = dict(raw)
        while True:
            if "$ref" in schema:
                ref = schema.pop("$ref")
                prefix = "#/$defs/"
                name = ref[len(prefix) :] if isinstance(ref, str) and ref.startswith(prefix) else None
                if name is None or name not in self._defs:
                    raise CRDSchemaError(path, f"cannot resolve $ref {ref!r}")
                if name in stack:
                    chain = " -> ".join((*stack[stack.index(name) :], name))
                    raise CRDSchemaError(
                        path,
                        f"recursive model {chain}: structural CRD schemas cannot express recursion "
                        "(flatten the model, or make the field opaque with "
                        "x-kubernetes-preserve-unknown-fields)",
                    )
                schema = _merge(self._defs[name], schema)
                stack = (*stack, name)
            elif "allOf" in schema:
                parts = schema.pop("allOf")
                if not isinstance(parts, list) or len(parts) != 1:
                    raise CRDSchemaError(path, "allOf with several schemas is not supported; use one model")
                schema = _merge(parts[0], schema)
            else:
                return schema, stack

    # -- named schema overrides --------------------------------------------------------------
    def _override(self, raw: Mapping[str, Any], path: str) -> dict[str, Any]:
        name = raw[SCHEMA_OVERRIDE_KEY]
        factory = SCHEMA_OVERRIDES.get(name) if isinstance(name, str) else None
        if factory is None:
            raise CRDSchemaError(path, f"unknown {SCHEMA_OVERRIDE_KEY} {name!r}; known: {sorted(SCHEMA_OVERRIDES)}")
        out = copy.deepcopy(factory())
        if isinstance(raw.get("description"), str):
            out["description"] = raw["description"]
        for key in ("maxItems", "minItems"):
            if key in raw:
                out[key] = raw[key]
        if "x-kubernetes-validations" in raw:
            out = _merge(out, {"x-kubernetes-validations": raw["x-kubernetes-validations"]})
        return out

    # -- escape hatch: an opaque subtree -------------------------------------------------------
    def _opaque(self, raw: Mapping[str, Any], path: str) -> dict[str, Any]:
        kept = {
            k: v for k, v in raw.items() if k in ("description", "default", "type", "nullable") or k in K8S_EXTENSIONS
        }
        return self._plain(kept, path, ())

    # -- unions --------------------------------------------------------------------------------
    def _union(
        self, schema: dict[str, Any], path: str, stack: tuple[str, ...], *, null_prunable: bool
    ) -> dict[str, Any]:
        if "anyOf" in schema and "oneOf" in schema:
            raise CRDSchemaError(path, "both anyOf and oneOf: not structural")
        key = "anyOf" if "anyOf" in schema else "oneOf"
        branches = schema.pop(key)
        schema.pop("discriminator", None)
        if not isinstance(branches, list) or not branches:
            raise CRDSchemaError(path, f"{key} must be a non-empty list")
        non_null = [b for b in branches if not _is_null_branch(b)]
        has_null = len(non_null) < len(branches)
        if not non_null:
            raise CRDSchemaError(path, "a field that can only be null has no CRD schema")
        if has_null and schema.get("default", _MISSING) is None:
            del schema["default"]

        if len(non_null) == 1:
            out = self.node(_merge(non_null[0], schema), path, stack, null_prunable=null_prunable)
        else:
            resolved = [self._resolve(b, path, stack)[0] for b in non_null]
            out = self._plain(self._merge_scalar_union(resolved, schema, key, path, non_null), path, stack)
        if has_null and not null_prunable:
            out["nullable"] = True
        return out

    def _merge_scalar_union(
        self, resolved: list[dict[str, Any]], siblings: dict[str, Any], key: str, path: str, raw: list[Any]
    ) -> dict[str, Any]:
        kinds = [b.get("type") for b in resolved]
        bare = all(_validation_keys(b) <= {"type"} for b in resolved)
        if bare and sorted(map(str, kinds)) == ["integer", "string"]:
            return {**siblings, "x-kubernetes-int-or-string": True}
        enum_only = all(
            _validation_keys(b) <= {"type", "enum", "const"} and ("enum" in b or "const" in b) for b in resolved
        )
        if enum_only and len(set(map(str, kinds))) == 1 and kinds[0] in SCALAR_TYPES:
            values: list[Any] = []
            for b in resolved:
                for v in b["enum"] if "enum" in b else [b["const"]]:
                    if v not in values:
                        values.append(v)
            return {**siblings, "type": kinds[0], "enum": values}
        labels = []
        for b, r in zip(raw, resolved, strict=True):
            ref = b.get("$ref") if isinstance(b, dict) else None
            labels.append(ref.rsplit("/", 1)[-1] if isinstance(ref, str) else str(r.get("type", "any")))
        raise CRDSchemaError(
            path,
            f"union {' | '.join(labels)} ({key}) is not expressible in a structural CRD schema; "
            "use one model with optional fields (plus a CEL rule for exclusivity), or mark the field "
            "opaque with Field(json_schema_extra={'x-kubernetes-preserve-unknown-fields': True})",
        )

    # -- a node without refs or unions ---------------------------------------------------------
    def _plain(self, schema: Mapping[str, Any], path: str, stack: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_rules: dict[str, Any] = {}  # constraints on map keys, checked by one CEL rule
        required = schema.get("required", [])
        for key, value in schema.items():
            if key in _DROPPED_KEYS:
                continue
            if key == "examples":
                if isinstance(value, list) and value and "example" not in schema:
                    out["example"] = copy.deepcopy(value[0])
            elif key == "type":
                if value == "null" or not isinstance(value, str) or value not in TYPES:
                    raise CRDSchemaError(path, f"unsupported type {value!r}")
                out["type"] = value
            elif key == "format":
                if value in ALLOWED_FORMATS.get(str(schema.get("type")), frozenset()):
                    out["format"] = value
            elif key == "const":
                if "enum" not in schema:
                    out["enum"] = [copy.deepcopy(value)]
            elif key == "enum":
                if not isinstance(value, list) or not value:
                    raise CRDSchemaError(path, "enum must be a non-empty list")
                out["enum"] = copy.deepcopy(value)
            elif key == "default":
                if value is not None:
                    out["default"] = _strip_nulls(copy.deepcopy(value))
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                continue  # handled below, together with minimum/maximum
            elif key in _COPIED_KEYS:
                out[key] = copy.deepcopy(value)
            elif key == "properties":
                # A null in a non-nullable field is pruned by the apiserver, which for an optional
                # field defaulting to None means the same as null: no `nullable` needed there.
                out["properties"] = {
                    name: self.node(
                        sub,
                        f"{path}.{name}",
                        stack,
                        null_prunable=name not in required and isinstance(sub, dict) and sub.get("default") is None,
                    )
                    for name, sub in value.items()
                }
            elif key == "required":
                out["required"] = list(value)
            elif key == "items":
                if not isinstance(value, dict):
                    raise CRDSchemaError(path, "tuple-style items are not structural; use list[X] or a model")
                out["items"] = self.node(value, f"{path}[*]", stack)
            elif key == "additionalProperties":
                if value is True or value == {}:
                    out["x-kubernetes-preserve-unknown-fields"] = True
                elif isinstance(value, dict):
                    out["additionalProperties"] = self.node(value, f"{path}.*", stack)
                # False (extra="forbid"): unknown fields are pruned anyway.
            elif key == "uniqueItems":
                continue  # handled below, once items are known
            elif key == "propertyNames":
                if not isinstance(value, Mapping):
                    raise CRDSchemaError(path, "propertyNames must be a schema")
                key_rules.update(value)
            elif key == "patternProperties":
                # pydantic: dict[Annotated[str, Field(pattern=P)], V] -> {patternProperties: {P: V}}
                if not isinstance(value, Mapping) or len(value) != 1 or "additionalProperties" in schema:
                    raise CRDSchemaError(path, "patternProperties cannot be expressed in a CRD schema")
                ((pattern, value_schema),) = value.items()
                key_rules["pattern"] = pattern
                out["additionalProperties"] = self.node(value_schema, f"{path}.*", stack)
            elif key in _UNSUPPORTED_KEYS:
                what = "tuples" if key == "prefixItems" else f"JSON schema keyword {key!r}"
                raise CRDSchemaError(path, f"{what} cannot be expressed in a CRD schema")
            elif key in K8S_EXTENSIONS:
                _check_extension(key, value, path)
                out[key] = copy.deepcopy(value)
            elif key == CONDITION_MARKER:
                out[key] = True
            else:
                raise CRDSchemaError(path, f"unsupported schema keyword {key!r}")

        if key_rules:
            out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), _map_key_rule(key_rules, path)]
        _convert_exclusive_bounds(schema, out)
        self._finish(schema, out, path)
        return out

    def _finish(self, schema: Mapping[str, Any], out: dict[str, Any], path: str) -> None:
        flexible = out.get("x-kubernetes-int-or-string") is True
        preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
        if "type" not in out and not flexible:
            inferred = _infer_type(out)
            if inferred is not None:
                out["type"] = inferred
            elif not preserve:
                if _validation_keys(out) - {"default", "nullable"} - K8S_EXTENSIONS:
                    raise CRDSchemaError(path, "cannot infer a type for this schema")
                out["x-kubernetes-preserve-unknown-fields"] = True  # typing.Any
        if out.get("type") == "array":
            items = out.setdefault("items", {"x-kubernetes-preserve-unknown-fields": True})
            if items.pop(CONDITION_MARKER, False) and "x-kubernetes-list-type" not in out:
                out["x-kubernetes-list-type"] = "map"
                out["x-kubernetes-list-map-keys"] = ["type"]
            if schema.get("uniqueItems") is True:
                if items.get("type") not in SCALAR_TYPES:
                    raise CRDSchemaError(
                        path,
                        "a set of non-scalar items cannot be expressed; use a list with x-kubernetes-list-type: map",
                    )
                out.setdefault("x-kubernetes-list-type", "set")


def _cel_string(text: str, path: str) -> str:
    """``text`` as a CEL raw string literal (no escape processing, so regexes stay as written)."""
    for quote in ("'", '"', "'''", '"""'):
        if quote not in text and not text.endswith(quote[0]) and "\n" not in text:
            return f"r{quote}{text}{quote}"
    raise CRDSchemaError(path, f"cannot quote {text!r} as a CEL string")


_KEY_RULE_ORDER: Final = ("enum", "const", "minLength", "maxLength", "pattern")


def _map_key_rule(spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Map-key constraints (``dict[Annotated[str, Field(...)], V]``) as one CEL rule.

    CRD schemas have neither ``propertyNames`` nor ``patternProperties``; ``self.all(k, ...)``
    over the map's keys checks the same thing at admission (as pydantic does: a key that does
    not match is an error).  Only string constraints (enum/const, min/maxLength, pattern) are
    translated; anything else raises.
    """
    checks: list[str] = []
    words: list[str] = []
    for key in sorted(spec, key=lambda k: (_KEY_RULE_ORDER.index(k) if k in _KEY_RULE_ORDER else -1, k)):
        value = spec[key]
        if key in _DROPPED_KEYS or key == "description" or (key == "type" and value == "string"):
            continue
        if key == "pattern":
            checks.append(f"k.matches({_cel_string(value, path)})")
            words.append(f"match {value}")
        elif key == "minLength":
            checks.append(f"size(k) >= {int(value)}")
            words.append(f"have at least {int(value)} characters")
        elif key == "maxLength":
            checks.append(f"size(k) <= {int(value)}")
            words.append(f"have at most {int(value)} characters")
        elif key in ("enum", "const"):
            values = value if key == "enum" else [value]
            if not all(isinstance(v, str) for v in values):
                raise CRDSchemaError(path, "map keys must be strings")
            checks.append(f"k in [{', '.join(_cel_string(v, path) for v in values)}]")
            words.append(f"be one of {', '.join(values)}")
        else:
            raise CRDSchemaError(path, f"map-key constraint {key!r} cannot be expressed in a CRD schema")
    if not checks:
        raise CRDSchemaError(path, "propertyNames without a supported constraint")
    return {"rule": f"self.all(k, {' && '.join(checks)})", "message": f"map keys must {' and '.join(words)}"}


def _infer_type(out: Mapping[str, Any]) -> str | None:
    if "properties" in out or "additionalProperties" in out:
        return "object"
    if "items" in out:
        return "array"
    enum = out.get("enum")
    if isinstance(enum, list) and enum:
        kinds = {_json_type(v) for v in enum}
        if len(kinds) == 1:
            return kinds.pop()
        if kinds == {"integer", "number"}:
            return "number"
    return None


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


def _convert_exclusive_bounds(schema: Mapping[str, Any], out: dict[str, Any]) -> None:
    """JSON Schema 2020 ``exclusiveMinimum: 5`` -> OpenAPI v3 ``minimum: 5, exclusiveMinimum: true``."""
    for bound, exclusive, sign in (("minimum", "exclusiveMinimum", 1), ("maximum", "exclusiveMaximum", -1)):
        value = schema.get(exclusive)
        if value is None:
            continue
        if isinstance(value, bool):  # already OpenAPI v3 style (hand-written extra)
            out[exclusive] = value
            continue
        inclusive = schema.get(bound)
        if inclusive is None or sign * value >= sign * inclusive:  # the exclusive bound is the binding one
            out[bound] = value
            out[exclusive] = True


# --------------------------------------------------------------------------------------------
# Vendor extension checks (shared by the transformer and assert_structural)
# --------------------------------------------------------------------------------------------


def _check_extension(key: str, value: Any, path: str) -> None:
    if key in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string"):
        if not isinstance(value, bool):
            raise CRDSchemaError(path, f"{key} must be a boolean")
        if key == "x-kubernetes-preserve-unknown-fields" and value is not True:
            raise CRDSchemaError(path, f"{key} must be true or absent")
    elif key == "x-kubernetes-list-type":
        if value not in _LIST_TYPES:
            raise CRDSchemaError(path, f"{key} must be one of {sorted(_LIST_TYPES)}, got {value!r}")
    elif key == "x-kubernetes-map-type":
        if value not in _MAP_TYPES:
            raise CRDSchemaError(path, f"{key} must be one of {sorted(_MAP_TYPES)}, got {value!r}")
    elif key == "x-kubernetes-list-map-keys":
        if not isinstance(value, list) or not value or not all(isinstance(k, str) for k in value):
            raise CRDSchemaError(path, f"{key} must be a non-empty list of strings")
    elif key == "x-kubernetes-validations":
        _check_cel(value, path)


def _check_cel(rules: Any, path: str) -> None:
    if not isinstance(rules, list) or not rules:
        raise CRDSchemaError(path, "x-kubernetes-validations must be a non-empty list of rules")
    for i, rule in enumerate(rules):
        where = f"{path} x-kubernetes-validations[{i}]"
        if not isinstance(rule, dict):
            raise CRDSchemaError(where, "a rule must be a mapping")
        unknown = set(rule) - _CEL_KEYS
        if unknown:
            raise CRDSchemaError(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_CEL_KEYS)}")
        if not isinstance(rule.get("rule"), str) or not rule["rule"].strip():
            raise CRDSchemaError(where, "'rule' must be a non-empty CEL expression")
        for text_key in ("message", "messageExpression", "fieldPath"):
            if text_key in rule and not isinstance(rule[text_key], str):
                raise CRDSchemaError(where, f"{text_key!r} must be a string")
        if "\n" in rule.get("message", ""):
            raise CRDSchemaError(where, "'message' must not contain line breaks")
        if "reason" in rule and rule["reason"] not in CEL_REASONS:
            raise CRDSchemaError(where, f"'reason' must be one of {sorted(CEL_REASONS)}")
        if "optionalOldSelf" in rule and not isinstance(rule["optionalOldSelf"], bool):
            raise CRDSchemaError(where, "'optionalOldSelf' must be a boolean")


# --------------------------------------------------------------------------------------------
# Public: schema generation
# --------------------------------------------------------------------------------------------


def _strip_markers(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_markers(v) for k, v in node.items() if k != CONDITION_MARKER}
    if isinstance(node, list):
        return [_strip_markers(v) for v in node]
    return node


def openapi_schema(model: type[BaseModel], *, mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (aliases as property names).

    ``mode`` is pydantic's JSON-schema mode: ``"validation"`` describes what the model
    accepts (right for ``spec``, written by users), ``"serialization"`` what
    ``model_dump(mode="json", by_alias=True)`` produces (right for ``status``, written by
    the operator).  Raises :class:`CRDSchemaError` for models that have no structural form.
    """
    raw = model.model_json_schema(by_alias=True, mode=mode, schema_generator=_CRDJsonSchema)
    defs = raw.pop("$defs", {})
    schema = _Transformer(defs).node(raw, model.__name__, ())
    schema = cast(dict[str, Any], _strip_markers(schema))
    if schema.get("type") != "object":
        raise CRDSchemaError(model.__name__, "a CRD model must be an object")
    assert_structural(schema)
    return schema


def condition_schema() -> dict[str, Any]:
    """``status.conditions``: a list of ``metav1.Condition``, merged by ``type`` (list-map)."""
    item = openapi_schema(Condition, mode="serialization")
    return {
        "description": "Conditions describe the current state of the resource (Ready, Reconciling, Stalled).",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


#: Named schemas usable as ``Field(json_schema_extra={"x-bmfleet-schema": NAME})``.
SCHEMA_OVERRIDES: dict[str, Callable[[], dict[str, Any]]] = {"conditions": condition_schema}


def register_schema_override(name: str, factory: Callable[[], dict[str, Any]]) -> None:
    """Make ``factory()`` available as ``{"x-bmfleet-schema": name}`` (names are unique)."""
    if name in SCHEMA_OVERRIDES:
        raise ValueError(f"schema override {name!r} is already registered")
    SCHEMA_OVERRIDES[name] = factory


# --------------------------------------------------------------------------------------------
# Public: structural check
# --------------------------------------------------------------------------------------------


def assert_structural(schema: Mapping[str, Any], *, path: str = "$", crd_root: bool = False) -> None:
    """Raise :class:`CRDSchemaError` at the first node the apiserver would reject as non-structural.

    ``path`` is a JSON path into the schema document (``$.properties.spec.properties.x``).
    Checks: every node has a known ``type`` (unless int-or-string / preserve-unknown-fields);
    arrays have ``items``; no ``$ref``/``definitions``/tuple items/``uniqueItems``/
    ``additionalProperties: false``; ``properties`` and ``additionalProperties`` are not
    mixed; junctors carry no type/description/default/nullable; vendor extensions and CEL
    rules are well-formed; list-map keys are required or defaulted scalars; formats are
    known; every ``default`` validates against its node.  With ``crd_root=True`` the root
    rules apply too (object type, ``metadata`` limited to name/generateName).
    """
    _check_node(schema, path, in_junctor=False)
    if crd_root:
        if schema.get("type") != "object":
            raise CRDSchemaError(path, "the root of a CRD schema must be type: object")
        meta = schema.get("properties", {}).get("metadata")
        if isinstance(meta, Mapping):
            extra = set(meta.get("properties", {})) - {"name", "generateName"}
            if extra or set(meta) - {"type", "description", "properties"}:
                raise CRDSchemaError(
                    f"{path}.properties.metadata", "only metadata.name and metadata.generateName may be constrained"
                )


def _check_node(node: Any, path: str, *, in_junctor: bool) -> None:
    if not isinstance(node, Mapping):
        raise CRDSchemaError(path, f"a schema node must be a mapping, got {type(node).__name__}")
    unknown = [k for k in node if k not in _CRD_SCHEMA_KEYS]
    if unknown:
        raise CRDSchemaError(path, f"{unknown[0]!r} is not supported in a CRD schema")
    for key in node:
        if key in K8S_EXTENSIONS:
            _check_extension(key, node[key], path)

    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    kind = node.get("type")
    if in_junctor:
        if not int_or_string:
            banned = [k for k in ("type", "description", "default", "additionalProperties", "nullable") if k in node]
            if banned:
                raise CRDSchemaError(path, f"{banned[0]!r} must not be set inside allOf/anyOf/oneOf/not")
    elif int_or_string:
        if kind is not None:
            raise CRDSchemaError(path, "type must be empty with x-kubernetes-int-or-string")
    elif kind is None and not preserve:
        raise CRDSchemaError(path, "missing type (structural schemas need one on every node)")
    if kind is not None and kind not in TYPES:
        raise CRDSchemaError(path, f"unknown type {kind!r}")

    if node.get("uniqueItems") is True:
        raise CRDSchemaError(path, "uniqueItems: true is forbidden; use x-kubernetes-list-type: set")
    for exclusive in ("exclusiveMinimum", "exclusiveMaximum"):
        if exclusive in node and not isinstance(node[exclusive], bool):
            raise CRDSchemaError(path, f"{exclusive} must be a boolean (OpenAPI v3)")
    fmt = node.get("format")
    if fmt is not None and fmt not in ALLOWED_FORMATS.get(str(kind), frozenset()):
        raise CRDSchemaError(path, f"format {fmt!r} is not known for type {kind!r}")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise CRDSchemaError(path, "enum must be a non-empty list")
    if node.get("x-kubernetes-embedded-resource") is True and kind != "object":
        raise CRDSchemaError(path, "x-kubernetes-embedded-resource needs type: object")
    if "x-kubernetes-map-type" in node and kind != "object":
        raise CRDSchemaError(path, "x-kubernetes-map-type is only valid on objects")

    props = node.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            raise CRDSchemaError(f"{path}.properties", "must be a mapping")
        if kind not in (None, "object"):
            raise CRDSchemaError(path, f"properties on a node of type {kind!r}")
        for name, sub in props.items():
            _check_node(sub, f"{path}.properties.{name}", in_junctor=in_junctor)
    addl = node.get("additionalProperties")
    if addl is not None:
        if addl is False:
            raise CRDSchemaError(path, "additionalProperties: false is not allowed (unknown fields are pruned anyway)")
        if isinstance(addl, Mapping):
            if props:
                raise CRDSchemaError(path, "properties and additionalProperties are mutually exclusive")
            _check_node(addl, f"{path}.additionalProperties", in_junctor=in_junctor)
    required = node.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise CRDSchemaError(path, "required must be a list of strings")
        if len(set(required)) != len(required):
            raise CRDSchemaError(path, "required has duplicates")
        if not in_junctor and not preserve and addl is None:
            missing = [r for r in required if r not in (props or {})]
            if missing:
                raise CRDSchemaError(path, f"required field {missing[0]!r} is not in properties (it would be pruned)")

    items = node.get("items")
    if items is not None:
        if not isinstance(items, Mapping):
            raise CRDSchemaError(f"{path}.items", "items must be a single schema (no tuples)")
        if kind not in (None, "array"):
            raise CRDSchemaError(path, f"items on a node of type {kind!r}")
        _check_node(items, f"{path}.items", in_junctor=in_junctor)
    elif kind == "array" and not in_junctor:
        raise CRDSchemaError(path, "type: array needs items")
    _check_list_type(node, path)

    for junctor in _JUNCTORS:
        if junctor in node:
            branches = node[junctor]
            if not isinstance(branches, list) or not branches:
                raise CRDSchemaError(path, f"{junctor} must be a non-empty list")
            for i, branch in enumerate(branches):
                _check_junctor_branch(node, branch, f"{path}.{junctor}[{i}]", int_or_string)
    if "not" in node:
        _check_junctor_branch(node, node["not"], f"{path}.not", int_or_string)

    if "default" in node and not in_junctor:
        problem = _value_problem(node["default"], node, "default")
        if problem is not None:
            raise CRDSchemaError(path, f"invalid default: {problem}")


def _check_junctor_branch(outer: Mapping[str, Any], branch: Any, path: str, int_or_string: bool) -> None:
    if (
        int_or_string
        and isinstance(branch, Mapping)
        and set(branch) == {"type"}
        and branch["type"] in ("integer", "string")
    ):
        return
    _check_node(branch, path, in_junctor=True)
    assert isinstance(branch, Mapping)
    for name in branch.get("properties", {}):
        if name not in outer.get("properties", {}):
            raise CRDSchemaError(f"{path}.properties.{name}", "a field inside a junctor must also be specified outside")
    if "items" in branch and "items" not in outer:
        raise CRDSchemaError(f"{path}.items", "items inside a junctor must also be specified outside")


def _check_list_type(node: Mapping[str, Any], path: str) -> None:
    list_kind = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if list_kind is None:
        if keys is not None:
            raise CRDSchemaError(path, "x-kubernetes-list-map-keys needs x-kubernetes-list-type: map")
        return
    if node.get("type") != "array":
        raise CRDSchemaError(path, "x-kubernetes-list-type is only valid on arrays")
    items = node.get("items", {})
    if list_kind == "set":
        if (
            items.get("type") in ("object", "array")
            and items.get("x-kubernetes-map-type") != "atomic"
            and items.get("x-kubernetes-list-type") != "atomic"
        ):
            raise CRDSchemaError(path, "x-kubernetes-list-type: set needs scalar (or atomic) items")
    elif list_kind == "map":
        if not keys:
            raise CRDSchemaError(path, "x-kubernetes-list-type: map needs x-kubernetes-list-map-keys")
        if items.get("type") != "object":
            raise CRDSchemaError(path, "x-kubernetes-list-type: map needs object items")
        item_props = items.get("properties", {})
        for key in keys:
            prop = item_props.get(key)
            if not isinstance(prop, Mapping) or prop.get("type") not in SCALAR_TYPES:
                raise CRDSchemaError(path, f"list-map key {key!r} must be a scalar property of the items")
            if key not in items.get("required", []) and "default" not in prop:
                raise CRDSchemaError(path, f"list-map key {key!r} must be required or have a default")
    elif keys is not None:
        raise CRDSchemaError(path, "x-kubernetes-list-map-keys needs x-kubernetes-list-type: map")


def _value_problem(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """Why ``value`` does not validate against ``schema`` (the subset the apiserver checks), or None."""
    if value is None:
        return None if schema.get("nullable") is True else f"{where} is null"
    if schema.get("x-kubernetes-int-or-string") is True:
        ok = _json_type(value) in ("integer", "string")
        return None if ok else f"{where} must be an integer or a string"
    kind = schema.get("type")
    actual = _json_type(value)
    if kind is not None and actual != kind and not (kind == "number" and actual == "integer"):
        return f"{where} is {actual}, expected {kind}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}={value!r} is not one of {schema['enum']}"
    if actual == "string":
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{where} is shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where} is longer than {schema['maxLength']}"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return f"{where}={value!r} does not match {schema['pattern']!r}"
    if actual in ("integer", "number"):
        for bound, exclusive, sign in (("minimum", "exclusiveMinimum", 1), ("maximum", "exclusiveMaximum", -1)):
            if bound not in schema:
                continue
            limit = sign * schema[bound]
            if sign * value < limit or (schema.get(exclusive) is True and sign * value == limit):
                return f"{where}={value!r} violates {bound} {schema[bound]}"
    if actual == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{where} has fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} has more than {schema['maxItems']} items"
        items = schema.get("items", {})
        for i, item in enumerate(value):
            problem = _value_problem(item, items, f"{where}[{i}]")
            if problem is not None:
                return problem
    if actual == "object":
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        for key, item in value.items():
            if key in props:
                problem = _value_problem(item, props[key], f"{where}.{key}")
            elif isinstance(addl, Mapping):
                problem = _value_problem(item, addl, f"{where}.{key}")
            elif preserve or addl is True:
                problem = None
            else:
                problem = f"{where}.{key} is an unknown field (it would be pruned)"
            if problem is not None:
                return problem
        for key in schema.get("required", []):
            if key not in value:
                return f"{where}.{key} is required"
    return None


# --------------------------------------------------------------------------------------------
# Public: CRD assembly
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Public: YAML
# --------------------------------------------------------------------------------------------

#: Keys written first (in this order) in every mapping; the rest follow alphabetically,
#: except the children of ``properties``, which keep the model's field order.  So: a manifest
#: reads apiVersion, kind, metadata, spec, status; CRD names read kind, listKind, plural...;
#: a version reads name, served, storage; a schema node reads type, format, description.
_KEY_PRIORITY: Final = (
    "apiVersion",
    "kind",
    "listKind",
    "plural",
    "singular",
    "shortNames",
    "categories",
    "metadata",
    "name",
    "namespace",
    "served",
    "storage",
    "spec",
    "status",
    "type",
    "format",
    "description",
)


def _key_rank(key: str) -> tuple[int, str]:
    return (_KEY_PRIORITY.index(key) if key in _KEY_PRIORITY else len(_KEY_PRIORITY), key)


def _ordered(value: Any, *, keep_order: bool = False) -> Any:
    if isinstance(value, Mapping):
        keys = list(value) if keep_order else sorted(value, key=lambda k: _key_rank(str(k)))
        return {k: _ordered(value[k], keep_order=(k == "properties")) for k in keys}
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors/aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(objs: Sequence[Mapping[str, Any]]) -> str:
    """Deterministic multi-document YAML (each document starts with ``---``)."""
    docs = [_ordered(obj) for obj in objs]
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=True,
        width=120,
    )
