"""Helpers that model authors put into pydantic ``json_schema_extra`` for the CRD generator.

The CRD generator (:mod:`bmfleet.api.crdgen`) turns pydantic models into structural
OpenAPI v3 schemas.  Everything Kubernetes-specific that pydantic cannot express on its
own is declared here, next to the model, through ``json_schema_extra``:

* model level: ``model_config = ConfigDict(json_schema_extra=validations(cel("self.a <= self.b", "a > b")))``
* field level: ``Field(json_schema_extra=merge(validations(cel("self == oldSelf", "immutable")), INT64))``

The helpers only build plain dicts, so this module has no dependency on the generator and
is cheap to import from the resource models.  It also holds :class:`Condition`, the
pydantic twin of ``metav1.Condition``; use it as ``list[Condition]`` in a status model
(the generator gives such a list ``x-kubernetes-list-type: map`` keyed by ``type``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

__all__ = [
    "CEL_REASONS",
    "CONDITIONS",
    "CONDITION_MARKER",
    "CONDITION_REASON_PATTERN",
    "CONDITION_TYPE_PATTERN",
    "INT32",
    "INT64",
    "INT_OR_STRING",
    "PRESERVE_UNKNOWN_FIELDS",
    "SCHEMA_OVERRIDE_KEY",
    "Condition",
    "ConditionStatus",
    "cel",
    "list_map",
    "list_type",
    "merge",
    "validations",
]

# -- private markers understood (and removed) by the generator -----------------------------

#: Field-level key: replace this field's whole schema by a named schema from the generator's
#: override registry (``crdgen.SCHEMA_OVERRIDES``).  The field's ``description`` is kept.
SCHEMA_OVERRIDE_KEY: Final = "x-bmfleet-schema"

#: Model-level key set on :class:`Condition`: an array of such items becomes a list-map keyed by ``type``.
CONDITION_MARKER: Final = "x-bmfleet-condition"

#: ``Field(json_schema_extra=CONDITIONS)`` -> the canonical ``metav1.Condition`` list schema.
CONDITIONS: Final[dict[str, Any]] = {SCHEMA_OVERRIDE_KEY: "conditions"}

# -- plain Kubernetes extensions ------------------------------------------------------------

#: ``format: int64`` on an integer field (pydantic emits no format for ``int``).
INT64: Final[dict[str, Any]] = {"format": "int64"}
#: ``format: int32`` on an integer field.
INT32: Final[dict[str, Any]] = {"format": "int32"}
#: A free-form subtree: kept as-is by the apiserver (no pruning, no validation).
PRESERVE_UNKNOWN_FIELDS: Final[dict[str, Any]] = {"x-kubernetes-preserve-unknown-fields": True}
#: ``int | str`` (e.g. ``"25%"`` or ``3``); the generator also maps a bare ``int | str`` union to this.
INT_OR_STRING: Final[dict[str, Any]] = {"x-kubernetes-int-or-string": True}

#: Values the apiserver accepts for ``x-kubernetes-validations[].reason``.
CEL_REASONS: Final = frozenset(
    {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
)

#: metav1.Condition ``type``: a qualified name (optional DNS-subdomain prefix + ``/``), at most 316 chars.
CONDITION_TYPE_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
#: metav1.Condition ``reason``: CamelCase-ish identifier.
CONDITION_REASON_PATTERN: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def cel(
    rule: str,
    message: str | None = None,
    field_path: str | None = None,
    reason: str | None = None,
    *,
    message_expression: str | None = None,
    optional_old_self: bool | None = None,
) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry; wrap one or more with :func:`validations`.

    ``rule`` sees the node it is attached to as ``self`` (and ``oldSelf`` for transition
    rules such as immutability: ``self == oldSelf``).  ``reason`` must be one of
    :data:`CEL_REASONS`; ``field_path`` is a JSON path relative to ``self`` (e.g. ``.replicas``).
    """
    if not rule.strip():
        raise ValueError("CEL rule must not be empty")
    if reason is not None and reason not in CEL_REASONS:
        raise ValueError(f"CEL reason {reason!r} is not one of {sorted(CEL_REASONS)}")
    if message is not None and "\n" in message:
        raise ValueError("CEL message must not contain line breaks")
    entry: dict[str, Any] = {"rule": rule}
    if message is not None:
        entry["message"] = message
    if message_expression is not None:
        entry["messageExpression"] = message_expression
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    if optional_old_self is not None:
        entry["optionalOldSelf"] = optional_old_self
    return entry


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules: ``{"x-kubernetes-validations": [rules...]}``."""
    if not rules:
        raise ValueError("validations() needs at least one rule")
    return {"x-kubernetes-validations": list(rules)}


def list_type(kind: Literal["atomic", "set", "map"]) -> dict[str, Any]:
    """``x-kubernetes-list-type`` for a list field (``map`` needs keys: use :func:`list_map`)."""
    return {"x-kubernetes-list-type": kind}


def list_map(*keys: str) -> dict[str, Any]:
    """A list of objects merged by server-side apply on ``keys`` (each required or defaulted in the item)."""
    if not keys:
        raise ValueError("list_map() needs at least one key")
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def merge(*extras: dict[str, Any]) -> dict[str, Any]:
    """Combine several extras dicts; ``x-kubernetes-validations`` lists are concatenated."""
    out: dict[str, Any] = {}
    for extra in extras:
        for key, value in extra.items():
            if key == "x-kubernetes-validations" and key in out:
                out[key] = [*out[key], *value]
            else:
                out[key] = value
    return out


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(BaseModel):
    """Condition contains details for one aspect of the current state of this API resource."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        json_schema_extra={CONDITION_MARKER: True},
    )

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of condition in CamelCase or in foo.example.com/CamelCase.",
    )
    status: ConditionStatus = Field(description="Status of the condition, one of True, False, Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description=("observedGeneration represents the .metadata.generation that the condition was set based upon."),
        json_schema_extra=INT64,
    )
    last_transition_time: datetime = Field(
        description=("lastTransitionTime is the last time the condition transitioned from one status to another."),
        json_schema_extra={"format": "date-time"},  # kept in serialization mode (the serializer returns str)
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description=(
            "reason contains a programmatic identifier indicating the reason for the condition's "
            "last transition, in CamelCase."
        ),
    )
    message: str = Field(
        max_length=32768,
        description="message is a human readable message indicating details about the transition.",
    )

    @field_serializer("last_transition_time")
    def _rfc3339(self, value: datetime) -> str:
        """metav1.Time on the wire: UTC, second precision, ``Z`` (naive datetimes are taken as UTC)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
