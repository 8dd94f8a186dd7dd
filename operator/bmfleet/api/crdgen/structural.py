"""The structural check: :func:`assert_structural` rejects what the apiserver would."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bmfleet.api.crdgen.extensions import _check_extension
from bmfleet.api.crdgen.vocab import (
    _CRD_SCHEMA_KEYS,
    _JUNCTORS,
    ALLOWED_FORMATS,
    K8S_EXTENSIONS,
    SCALAR_TYPES,
    TYPES,
    CRDSchemaError,
    _json_type,
)


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
