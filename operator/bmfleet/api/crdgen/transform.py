"""pydantic JSON schema (2020-12, with ``$defs``) -> structural OpenAPI v3 schema.

:class:`_Transformer` implements the rewrite described in the :mod:`bmfleet.api.crdgen` docstring;
:func:`~bmfleet.api.crdgen.openapi_schema` is its public entry point.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from bmfleet.api.crdgen.extensions import _check_extension
from bmfleet.api.crdgen.keywords import (
    _convert_exclusive_bounds,
    _infer_type,
    _is_null_branch,
    _map_key_rule,
    _merge,
    _strip_nulls,
    _validation_keys,
)
from bmfleet.api.crdgen.overrides import SCHEMA_OVERRIDES
from bmfleet.api.crdgen.vocab import (
    _COPIED_KEYS,
    _DROPPED_KEYS,
    _JUNCTORS,
    _MISSING,
    _UNSUPPORTED_KEYS,
    ALLOWED_FORMATS,
    K8S_EXTENSIONS,
    SCALAR_TYPES,
    TYPES,
    CRDSchemaError,
)
from bmfleet.api.schema_extras import CONDITION_MARKER, SCHEMA_OVERRIDE_KEY


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
