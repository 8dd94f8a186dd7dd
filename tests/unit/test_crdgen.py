"""Tests for bmfleet.api.crdgen: pydantic models -> structural CRD schemas -> YAML.

The models here are small stand-ins for the real resource models (bmfleet.api.build ...),
chosen to exercise every transformation the generator performs.
"""

from __future__ import annotations

import copy
import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal

import pytest
import yaml
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

from bmfleet.api.crdgen import (
    CRDSchemaError,
    CRDSpec,
    PrinterColumn,
    assert_structural,
    build_crd,
    condition_schema,
    dump_yaml,
    openapi_schema,
)
from bmfleet.api.schema_extras import (
    CONDITIONS,
    INT64,
    PRESERVE_UNKNOWN_FIELDS,
    Condition,
    cel,
    list_map,
    merge,
    validations,
)

CAMEL = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Mode(enum.StrEnum):
    """How carefully to roll out."""

    FAST = "fast"
    SAFE = "safe"


class Limits(BaseModel):
    """CPU bounds of one widget."""

    model_config = CAMEL | {
        "json_schema_extra": validations(cel("self.maxCpu >= self.minCpu", "maxCpu < minCpu")),
    }

    min_cpu: int = Field(1, ge=0, description="Lower bound.")
    max_cpu: int = Field(4, ge=1, le=64, description="Upper bound.")


class Target(BaseModel):
    """A device to roll out to."""

    model_config = CAMEL

    device_name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$", description="Device.")
    weight: float = Field(1.0, gt=0, le=100, description="Share of traffic.")


class WidgetSpec(BaseModel):
    """Desired state of a Widget."""

    model_config = CAMEL | {
        "json_schema_extra": validations(cel("self.displayName != 'forbidden'", reason="FieldValueInvalid")),
    }

    display_name: str = Field(max_length=64, description="Human readable name.")
    mode: Mode = Field(Mode.SAFE, description="Rollout mode.")
    channel: Literal["stable", "beta"] = Field("stable", description="Release channel.")
    flavour: Literal["widget"] = "widget"
    replicas: int | None = Field(None, ge=0, description="Replica count; unset: operator decides.")
    must_say: str | None = Field(description="Required, but may be null.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    settings: dict[str, Any] | None = Field(None, description="Opaque settings map.")
    blob: Any = Field(None, description="Anything at all.")
    shapes: list[list[int]] = Field(default_factory=list, description="Input shapes.")
    limits: Limits = Field(
        default_factory=Limits,
        description="Per-widget limits (field description wins over the class docstring).",
        json_schema_extra=validations(cel("self.maxCpu <= 32", "at most 32 CPUs here")),
    )
    burst: Limits = Field(default_factory=lambda: Limits(max_cpu=8), description="Burst limits.")
    fallback: Limits = Limits(min_cpu=2, max_cpu=8)
    target: Target | None = Field(
        None,
        description="Single target.",
        json_schema_extra=validations(cel("self.weight <= 50", "too heavy")),
    )
    targets: list[Target] = Field(default_factory=list, json_schema_extra=list_map("deviceName"))
    tags: set[str] = Field(default_factory=set, description="Unique tags.")
    surge: int | str = Field(1, description="Absolute number or percentage.")
    homepage: AnyUrl | None = None
    timeout: timedelta = timedelta(seconds=30)
    not_before: datetime | None = None
    priority: Literal["low"] | Literal["high"] = "low"
    annotations: dict[Annotated[str, Field(max_length=253, pattern=r"^[a-z./-]+$")], str] | None = None
    epoch: int = Field(0, json_schema_extra=merge(INT64, validations(cel("self >= 0", "no negative epochs"))))


class WidgetStatus(BaseModel):
    """Observed state of a Widget."""

    model_config = CAMEL

    observed_generation: int | None = Field(
        None, ge=0, description="Last reconciled generation.", json_schema_extra=INT64
    )
    conditions: list[Condition] = Field(default_factory=list, description="Current conditions.")
    legacy_conditions: list[dict[str, Any]] = Field(
        default_factory=list, description="Replaced by the canonical schema.", json_schema_extra=CONDITIONS
    )

    @computed_field(description="True when the Ready condition is True.")  # type: ignore[prop-decorator]
    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)


WIDGET = CRDSpec(
    group="example.bmfleet.io",
    kind="Widget",
    plural="widgets",
    singular="widget",
    version="v1alpha1",
    short_names=("wdg",),
    categories=("bmfleet",),
    printer_columns=(
        PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition"),
        PrinterColumn("Mode", "string", ".spec.mode", priority=1),
        PrinterColumn("Replicas", "integer", ".spec.replicas", format="int32"),
    ),
    description="A widget, for tests.",
)


def walk(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for name, sub in node.get("properties", {}).items():
            out.extend(walk(sub, f"{path}.properties.{name}"))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                out.extend(walk(node[key], f"{path}.{key}"))
    return out


@pytest.fixture(scope="module")
def spec_schema() -> dict[str, Any]:
    return openapi_schema(WidgetSpec)


@pytest.fixture(scope="module")
def props(spec_schema: dict[str, Any]) -> dict[str, Any]:
    return spec_schema["properties"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# openapi_schema: the transformations
# ---------------------------------------------------------------------------------------------


def test_no_json_schema_2020_leftovers(spec_schema: dict[str, Any]) -> None:
    forbidden = {
        "$ref",
        "$defs",
        "title",
        "anyOf",
        "oneOf",
        "allOf",
        "const",
        "uniqueItems",
        "prefixItems",
        "propertyNames",
        "readOnly",
        "x-bmfleet-condition",
        "x-bmfleet-schema",
    }
    for path, node in walk(spec_schema):
        assert not forbidden & set(node), (path, forbidden & set(node))
        assert node.get("additionalProperties") is not False, path
        assert "default" not in node or node["default"] is not None, path
        assert (
            "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ), path


def test_root_is_an_object_with_the_docstring_and_aliases(spec_schema: dict[str, Any]) -> None:
    assert spec_schema["type"] == "object"
    assert spec_schema["description"] == "Desired state of a Widget."
    assert "displayName" in spec_schema["properties"] and "display_name" not in spec_schema["properties"]
    assert spec_schema["required"] == ["displayName", "mustSay"]


def test_scalars_enums_literals_and_const(props: dict[str, Any]) -> None:
    assert props["displayName"] == {"type": "string", "description": "Human readable name.", "maxLength": 64}
    assert props["mode"] == {
        "type": "string",
        "description": "Rollout mode.",
        "enum": ["fast", "safe"],
        "default": "safe",
    }
    assert props["channel"] == {
        "type": "string",
        "description": "Release channel.",
        "enum": ["stable", "beta"],
        "default": "stable",
    }
    assert props["flavour"] == {"type": "string", "enum": ["widget"], "default": "widget"}
    # Literal["low"] | Literal["high"]: anyOf of consts merged into one enum
    assert props["priority"] == {"type": "string", "enum": ["low", "high"], "default": "low"}


def test_optional_becomes_the_inner_type_without_null_default(props: dict[str, Any]) -> None:
    assert props["replicas"] == {
        "type": "integer",
        "minimum": 0,
        "description": "Replica count; unset: operator decides.",
    }
    # a *required* Optional keeps null as a legal value
    assert props["mustSay"] == {"type": "string", "description": "Required, but may be null.", "nullable": True}


def test_maps_any_and_nested_lists(props: dict[str, Any]) -> None:
    # default_factory=dict: no schema default (absent and {} mean the same to pydantic)
    assert props["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Free-form labels.",
    }
    assert props["settings"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Opaque settings map.",
    }
    assert props["blob"] == {"x-kubernetes-preserve-unknown-fields": True, "description": "Anything at all."}
    assert props["shapes"] == {
        "type": "array",
        "description": "Input shapes.",
        "items": {"type": "array", "items": {"type": "integer"}},
    }


def test_nullable_only_where_null_differs_from_absent() -> None:
    class Inner(BaseModel):
        note: str | None = None
        size: int = 1

    class Nulls(BaseModel):
        model_config = ConfigDict(extra="allow")
        plain: int | None = None  # null pruned == absent == None: not nullable
        sticky: int | None = 5  # an explicit null must survive, or the default 5 would replace it
        required: Inner | None  # required key, null allowed
        items: list[int | None] = []
        values: dict[str, str | None] = {}
        inner: Inner = Inner(size=2)

    schema = openapi_schema(Nulls)
    p = schema["properties"]
    assert p["plain"] == {"type": "integer"}
    assert p["sticky"] == {"type": "integer", "default": 5, "nullable": True}
    assert p["required"]["nullable"] is True and p["required"]["type"] == "object"
    assert p["items"]["items"] == {"type": "integer", "nullable": True}
    assert p["values"]["additionalProperties"] == {"type": "string", "nullable": True}
    assert p["inner"]["default"] == {"size": 2}  # the null inside the dumped default is dropped
    assert schema["required"] == ["required"]
    # extra="allow": known fields are validated, unknown ones kept
    assert schema["x-kubernetes-preserve-unknown-fields"] is True


def test_set_int_or_string_and_bounds(props: dict[str, Any]) -> None:
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-list-type": "set",
        "description": "Unique tags.",
    }
    assert props["surge"] == {
        "x-kubernetes-int-or-string": True,
        "default": 1,
        "description": "Absolute number or percentage.",
    }
    weight = props["targets"]["items"]["properties"]["weight"]
    # pydantic's draft-2020 exclusiveMinimum: 0 -> OpenAPI v3 minimum + boolean flag
    assert weight == {
        "type": "number",
        "description": "Share of traffic.",
        "default": 1.0,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 100,
    }


def test_formats_are_kept_only_where_the_apiserver_knows_them(props: dict[str, Any]) -> None:
    assert props["homepage"]["format"] == "uri"
    assert props["notBefore"] == {"type": "string", "format": "date-time"}
    assert props["timeout"] == {"type": "string", "default": "PT30S"}  # ISO 8601 != Go duration: no format
    assert props["epoch"]["format"] == "int64"
    assert "format" not in props["replicas"]  # plain int: no format unless asked


def test_submodel_defaults(props: dict[str, Any]) -> None:
    # default_factory=Limits -> {} so the apiserver applies the nested defaults itself
    assert props["limits"]["default"] == {}
    assert props["limits"]["properties"]["minCpu"]["default"] == 1
    assert props["limits"]["properties"]["maxCpu"]["default"] == 4
    # a factory building a non-default instance: only what differs from the nested defaults
    assert props["burst"]["default"] == {"maxCpu": 8}
    # a static default instance: pydantic's own (full, by-alias) dump
    assert props["fallback"]["default"] == {"minCpu": 2, "maxCpu": 8}
    # Optional submodel defaulting to None: no default at all
    assert "default" not in props["target"]


def test_descriptions_field_wins_over_class_docstring(props: dict[str, Any]) -> None:
    assert props["limits"]["description"].startswith("Per-widget limits")
    assert props["fallback"]["description"] == "CPU bounds of one widget."
    assert props["targets"]["items"]["description"] == "A device to roll out to."


def test_cel_at_model_and_field_level(spec_schema: dict[str, Any], props: dict[str, Any]) -> None:
    assert spec_schema["x-kubernetes-validations"] == [
        {"rule": "self.displayName != 'forbidden'", "reason": "FieldValueInvalid"}
    ]
    # field-level rules on a $ref-typed field land on the field's own node, after the model's rules
    assert props["limits"]["x-kubernetes-validations"] == [
        {"rule": "self.maxCpu >= self.minCpu", "message": "maxCpu < minCpu"},
        {"rule": "self.maxCpu <= 32", "message": "at most 32 CPUs here"},
    ]
    # the model-level rule follows the model wherever it is used
    assert props["fallback"]["x-kubernetes-validations"] == [
        {"rule": "self.maxCpu >= self.minCpu", "message": "maxCpu < minCpu"}
    ]
    # ... and through Optional[...] (anyOf + $ref) too
    assert props["target"]["x-kubernetes-validations"] == [{"rule": "self.weight <= 50", "message": "too heavy"}]
    assert props["epoch"]["x-kubernetes-validations"] == [{"rule": "self >= 0", "message": "no negative epochs"}]


def test_list_map_passthrough(props: dict[str, Any]) -> None:
    targets = props["targets"]
    assert targets["x-kubernetes-list-type"] == "map"
    assert targets["x-kubernetes-list-map-keys"] == ["deviceName"]
    assert targets["items"]["required"] == ["deviceName"]


def test_map_key_constraints_become_a_cel_rule(props: dict[str, Any]) -> None:
    assert props["annotations"]["additionalProperties"] == {"type": "string"}
    assert props["annotations"]["x-kubernetes-validations"] == [
        {
            "rule": "self.all(k, size(k) <= 253 && k.matches(r'^[a-z./-]+$'))",
            "message": "map keys must have at most 253 characters and match ^[a-z./-]+$",
        }
    ]


class LegacyRefStyle(BaseModel):
    """Older pydantic put field extras next to allOf: [{$ref}] instead of next to $ref."""

    model_config = CAMEL
    schema_override: ClassVar[dict[str, Any]] = {
        "$defs": {
            "Limits": {
                "type": "object",
                "title": "Limits",
                "description": "From the class.",
                "properties": {"a": {"type": "integer", "title": "A"}},
                "x-kubernetes-validations": [{"rule": "self.a > 0"}],
            }
        },
        "type": "object",
        "title": "LegacyRefStyle",
        "properties": {
            "limits": {
                "allOf": [{"$ref": "#/$defs/Limits"}],
                "description": "From the field.",
                "x-kubernetes-validations": [{"rule": "self.a < 9"}],
            }
        },
    }

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(cls.schema_override)


def test_field_extras_next_to_allof_ref() -> None:
    schema = openapi_schema(LegacyRefStyle)
    assert schema["properties"]["limits"] == {
        "type": "object",
        "description": "From the field.",
        "properties": {"a": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.a > 0"}, {"rule": "self.a < 9"}],
    }


# ---------------------------------------------------------------------------------------------
# openapi_schema: what cannot be expressed
# ---------------------------------------------------------------------------------------------


class TreeNode(BaseModel):
    value: int = 0
    children: list[TreeNode] = Field(default_factory=list)


class Holder(BaseModel):
    root: TreeNode


class Cat(BaseModel):
    meow: bool = True


class Dog(BaseModel):
    woof: bool = True


class Pets(BaseModel):
    pet: Cat | Dog


def test_recursive_models_raise() -> None:
    with pytest.raises(CRDSchemaError, match=r"recursive model TreeNode -> TreeNode") as info:
        openapi_schema(Holder)
    assert info.value.path == "Holder.root.children[*]"


def test_unions_of_objects_raise_naming_the_field() -> None:
    with pytest.raises(CRDSchemaError, match=r"union Cat \| Dog") as info:
        openapi_schema(Pets)
    assert info.value.path == "Pets.pet"


def test_opaque_escape_hatch_for_unions_and_recursion() -> None:
    class Opaque(BaseModel):
        pet: Cat | Dog = Field(json_schema_extra=PRESERVE_UNKNOWN_FIELDS, description="Any pet.")
        tree: TreeNode | None = Field(None, json_schema_extra={**PRESERVE_UNKNOWN_FIELDS, "type": "object"})

    props = openapi_schema(Opaque)["properties"]
    assert props["pet"] == {"x-kubernetes-preserve-unknown-fields": True, "description": "Any pet."}
    assert props["tree"] == {"x-kubernetes-preserve-unknown-fields": True, "type": "object"}


def test_tuples_raise() -> None:
    class Pair(BaseModel):
        xy: tuple[int, str]

    with pytest.raises(CRDSchemaError, match="tuples") as info:
        openapi_schema(Pair)
    assert info.value.path == "Pair.xy"


def test_defaults_must_validate() -> None:
    class BadDefault(BaseModel):
        count: int = Field(0, gt=0)

    with pytest.raises(CRDSchemaError, match="invalid default") as info:
        openapi_schema(BadDefault)
    assert info.value.path == "$.properties.count"


def test_bad_cel_rules_raise() -> None:
    class BadReason(BaseModel):
        x: int = Field(0, json_schema_extra={"x-kubernetes-validations": [{"rule": "self > 0", "reason": "Nope"}]})

    with pytest.raises(CRDSchemaError, match="reason"):
        openapi_schema(BadReason)
    with pytest.raises(ValueError, match="reason"):
        cel("self > 0", reason="Nope")


def test_set_of_objects_raises() -> None:
    class Frozen(BaseModel):
        model_config = ConfigDict(frozen=True)
        a: int

    class HasSet(BaseModel):
        items: set[Frozen]

    with pytest.raises(CRDSchemaError, match="set of non-scalar"):
        openapi_schema(HasSet)


# ---------------------------------------------------------------------------------------------
# assert_structural
# ---------------------------------------------------------------------------------------------


def test_assert_structural_reports_a_missing_type_with_its_path() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"description": "no type here"}}}},
    }
    with pytest.raises(CRDSchemaError, match="missing type") as info:
        assert_structural(schema)
    assert info.value.path == "$.properties.a.properties.b"


@pytest.mark.parametrize(
    ("schema", "path", "message"),
    [
        ({"type": "object", "additionalProperties": False}, "$", "additionalProperties: false"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "$", "uniqueItems"),
        ({"type": "array"}, "$", "needs items"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "$.properties.a", "'\\$ref' is not supported"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "$",
            "mutually exclusive",
        ),
        ({"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}}, "$", "'b' is not in"),
        ({"type": "integer", "minimum": 0, "exclusiveMinimum": 0}, "$", "boolean"),
        ({"type": "string", "format": "duration"}, "$", "format 'duration'"),
        ({"type": "string", "default": 3}, "$", "invalid default"),
        ({"type": "integer", "x-kubernetes-int-or-string": True}, "$", "type must be empty"),
        (
            {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
            },
            "$",
            "required or have a default",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}],
            },
            "$.anyOf[0]",
            "must not be set",
        ),
    ],
)
def test_assert_structural_rejects(schema: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(CRDSchemaError, match=message) as info:
        assert_structural(schema)
    assert info.value.path == path


def test_assert_structural_accepts_junctors_that_only_validate() -> None:
    assert_structural(
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        }
    )
    assert_structural({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]})


# ---------------------------------------------------------------------------------------------
# conditions and status
# ---------------------------------------------------------------------------------------------


def test_condition_schema_is_metav1_condition() -> None:
    schema = condition_schema()
    assert schema["type"] == "array"
    assert schema["x-kubernetes-list-type"] == "map"
    assert schema["x-kubernetes-list-map-keys"] == ["type"]
    item = schema["items"]
    assert item["type"] == "object"
    assert item["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    p = item["properties"]
    assert list(p) == ["type", "status", "observedGeneration", "lastTransitionTime", "reason", "message"]
    assert p["status"]["enum"] == ["True", "False", "Unknown"]
    assert {k: p["observedGeneration"][k] for k in ("type", "format", "minimum")} == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
    }
    assert "nullable" not in p["observedGeneration"]
    assert p["lastTransitionTime"]["format"] == "date-time"
    assert p["reason"]["pattern"] == "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    assert (p["reason"]["minLength"], p["reason"]["maxLength"]) == (1, 1024)
    assert p["message"]["maxLength"] == 32768
    assert p["type"]["maxLength"] == 316
    assert all("description" in sub for sub in p.values())


def test_condition_model_round_trips_with_camel_case() -> None:
    cond = Condition(
        type="Ready",
        status="True",
        reason="Reconciled",
        message="ok",
        last_transition_time=datetime(2026, 1, 2, 3, 4, 5),
        observed_generation=3,
    )
    wire = cond.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-01-02T03:04:05Z",
        "reason": "Reconciled",
        "message": "ok",
    }
    # metav1.Time on the wire: UTC, whole seconds, Z -- and it reads back
    aware = Condition.model_validate(wire)
    assert aware.last_transition_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert aware.model_dump(mode="json", by_alias=True, exclude_none=True) == wire
    late = cond.model_copy(
        update={"last_transition_time": datetime(2026, 1, 2, 4, 4, 5, 999, tzinfo=timezone(timedelta(hours=1)))}
    )
    assert late.model_dump(mode="json", by_alias=True)["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="pattern"):
        Condition(
            type="Ready", status="True", reason="not a reason!", message="", last_transition_time=datetime(2026, 1, 1)
        )


def test_status_uses_the_condition_schema_both_ways() -> None:
    status = openapi_schema(WidgetStatus, mode="serialization")
    canonical = condition_schema()
    by_type = status["properties"]["conditions"]
    assert by_type["items"] == canonical["items"]
    assert by_type["x-kubernetes-list-type"] == "map" and by_type["x-kubernetes-list-map-keys"] == ["type"]
    assert by_type["description"] == "Current conditions."
    marked = status["properties"]["legacyConditions"]
    assert marked == {**canonical, "description": "Replaced by the canonical schema."}
    # serialization mode: the computed field the operator writes is part of the schema
    assert status["properties"]["ready"] == {"type": "boolean", "description": "True when the Ready condition is True."}
    assert status["properties"]["observedGeneration"] == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "description": "Last reconciled generation.",
    }


# ---------------------------------------------------------------------------------------------
# build_crd
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd(WIDGET, WidgetSpec, WidgetStatus)


def test_crd_envelope(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"] == {"name": "widgets.example.bmfleet.io"}
    spec = crd["spec"]
    assert spec["group"] == "example.bmfleet.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Widget",
        "listKind": "WidgetList",
        "plural": "widgets",
        "singular": "widget",
        "shortNames": ["wdg"],
        "categories": ["bmfleet"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_crd_printer_columns_end_with_age(crd: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Ready", "Mode", "Replicas", "Age"]
    assert columns[0] == {
        "name": "Ready",
        "type": "string",
        "description": "Ready condition",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    }
    assert columns[1]["priority"] == 1
    assert columns[2]["format"] == "int32"
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    own_age = CRDSpec(
        group="a.io",
        kind="A",
        plural="as",
        singular="a",
        version="v1",
        printer_columns=(PrinterColumn("Age", "date", ".metadata.creationTimestamp", "mine"),),
    )
    ages = [
        c for c in build_crd(own_age, Cat, Dog)["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Age"
    ]
    assert ages == [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "mine"}]


def test_crd_root_schema(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert root["description"] == "A widget, for tests."
    assert list(root["properties"]) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert root["properties"]["apiVersion"]["type"] == "string"
    assert root["properties"]["kind"]["type"] == "string"
    assert root["properties"]["metadata"] == {"type": "object"}
    assert root["properties"]["spec"] == openapi_schema(WidgetSpec)
    assert root["properties"]["status"] == openapi_schema(WidgetStatus, mode="serialization")
    assert root["required"] == ["spec"]
    assert all("description" in root["properties"][k] for k in ("apiVersion", "kind", "spec", "status"))
    assert_structural(root, crd_root=True)


def test_crd_spec_validates_names() -> None:
    with pytest.raises(ValueError, match="plural"):
        CRDSpec(group="a.io", kind="A", plural="As", singular="a", version="v1")
    with pytest.raises(ValueError, match="version"):
        CRDSpec(group="a.io", kind="A", plural="as", singular="a", version="1")
    with pytest.raises(ValueError, match="type"):
        PrinterColumn("X", "str", ".spec.x")


# ---------------------------------------------------------------------------------------------
# dump_yaml
# ---------------------------------------------------------------------------------------------


def test_yaml_is_deterministic_and_readable(crd: dict[str, Any]) -> None:
    first = dump_yaml([crd, crd])
    again = dump_yaml([build_crd(WIDGET, WidgetSpec, WidgetStatus), build_crd(WIDGET, WidgetSpec, WidgetStatus)])
    assert first.encode() == again.encode()
    assert first.startswith(
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: widgets.example.bmfleet.io\nspec:\n"
    )
    assert first.count("\n---\n") == 1
    docs = list(yaml.safe_load_all(first))
    assert docs == [crd, crd]
    # same dict object twice, yet no anchors/aliases; block style; quoted YAML-1.1 booleans
    assert "&id" not in first and "*id" not in first
    assert "{type:" not in first
    assert "- 'True'" in first


def test_yaml_key_order() -> None:
    text = dump_yaml(
        [
            {
                "zeta": 1,
                "spec": {"b": 1, "a": 2},
                "metadata": {"name": "x"},
                "kind": "K",
                "apiVersion": "v1",
                "properties": {"z": {"type": "string"}, "a": {"type": "string"}},
            }
        ]
    )
    assert [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))] == [
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "properties",
        "zeta",
    ]
    # properties keep the model's field order; other mappings are sorted
    assert text.index("  z:") < text.index("  a:\n    type")
    assert text.index("  a: 2") < text.index("  b: 1")


def test_multiline_descriptions_are_literal_blocks() -> None:
    text = dump_yaml([{"description": "line one\nline two"}])
    assert "description: |-\n  line one\n  line two\n" in text


# ---------------------------------------------------------------------------------------------
# optional: cross-checks with kubernetes-validate (and its jsonschema dependency)
# ---------------------------------------------------------------------------------------------


def test_crd_passes_kubernetes_validate(crd: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for version in ("1.35", "1.37"):
        kubernetes_validate.validate(yaml.safe_load(dump_yaml([crd])), version, strict=True)


def test_model_dumps_validate_against_the_generated_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = WidgetSpec(
        display_name="w",
        must_say="hi",
        replicas=2,
        labels={"a": "b"},
        shapes=[[1, 3, 224, 224]],
        target=Target(device_name="dev-1", weight=10),
        targets=[Target(device_name="dev-2")],
        tags={"x", "y"},
        surge="25%",
        annotations={"a.io/b": "c"},
        settings={"k": [1, {"x": None}]},
    )
    status = WidgetStatus(
        observed_generation=1,
        conditions=[
            Condition(
                type="Ready",
                status="True",
                reason="Reconciled",
                message="",
                last_transition_time=datetime(2026, 1, 1, 0, 0, 0),
            )
        ],
    )
    for model, mode in ((spec, "validation"), (status, "serialization")):
        schema = openapi_schema(type(model), mode=mode)  # type: ignore[arg-type]
        wire = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        jsonschema.Draft4Validator(schema).validate(wire)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft4Validator(schema).validate({**wire, "observedGeneration": -1, "displayName": "x" * 65})
