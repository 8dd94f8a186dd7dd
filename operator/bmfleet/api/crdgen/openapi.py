"""Public schema generation: pydantic model -> structural OpenAPI v3 schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from bmfleet.api.crdgen.overrides import SCHEMA_OVERRIDES
from bmfleet.api.crdgen.structural import assert_structural
from bmfleet.api.crdgen.transform import _Transformer
from bmfleet.api.crdgen.vocab import CRDSchemaError
from bmfleet.api.schema_extras import CONDITION_MARKER, Condition


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


SCHEMA_OVERRIDES["conditions"] = condition_schema
