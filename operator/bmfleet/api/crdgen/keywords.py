"""Keyword-level helpers of the transformer: merging, nulls, map-key CEL rules, type inference, bounds."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from bmfleet.api.crdgen.vocab import _DROPPED_KEYS, CRDSchemaError, _json_type


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
