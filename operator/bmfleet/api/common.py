"""Building blocks shared by the bmfleet resource models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bmfleet.api.schema_extras import cel, validations

__all__ = ["API_VERSION", "GROUP", "VERSION", "ApiModel", "Chip", "Uri", "cel", "validations"]

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
# A bmodel runs only on the chip it was built for; builds, devices and rollouts share this list.
Chip = Literal["BM1684", "BM1684X"]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors in Python (the API server prunes)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
