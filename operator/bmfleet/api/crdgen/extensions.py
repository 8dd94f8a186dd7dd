"""Vendor extension checks (shared by the transformer and :func:`~bmfleet.api.crdgen.assert_structural`)."""

from __future__ import annotations

from typing import Any

from bmfleet.api.crdgen.vocab import _CEL_KEYS, _LIST_TYPES, _MAP_TYPES, CRDSchemaError
from bmfleet.api.schema_extras import CEL_REASONS


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
