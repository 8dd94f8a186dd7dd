"""Building blocks shared by the bmfleet resource models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "bmfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Where inputs may come from. `pvc://<claim>/<path>` and `file://` are mounted into the Job; http(s) is
# fetched by the worker; oci:// and s3:// go through the artifact store.
URI_PATTERN = r"^(https?|file|pvc|oci|s3)://[^\s]+$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
# Kubernetes resource.Quantity, as the API server's own OpenAPI pattern spells it.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

Uri = Annotated[str, Field(min_length=8, max_length=2048, pattern=URI_PATTERN)]


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry: a cross-field rule the API server checks at admission."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules for a model or field."""
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors in Python (the API server prunes)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
