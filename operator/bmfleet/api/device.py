"""EdgeDevice (`ed`): one SOPHON SoC box. The spec says what it should run (written by the rollout controller
only); the status says what it runs (written by the gateway only, from the agent's reports).

The shape is the shared contract between the rollout controller and the gateway; the gateway translates it to
the agent protocol (docs/gateway-protocol.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from bmfleet.api.common import ApiModel, Chip, Uri, cel, validations
from bmfleet.api.schema_extras import INT64, Condition, list_map, list_type

# Model names become directory names on the device (the agent's rule).
MODEL_NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
ModelName = Annotated[str, Field(min_length=1, max_length=63, pattern=MODEL_NAME_PATTERN)]
Digest = Annotated[str, Field(max_length=71, pattern=DIGEST_PATTERN)]
Action = Literal["install", "rollback"]
ModelState = Literal["Downloading", "Staged", "Active", "Failed", "RolledBack"]

# Annotation on an EdgeDevice: JSON {modelName: RFC 3339 time} of when a rollout last changed that model's
# desired entry. Device timeouts count from it; it lives in metadata so it is written in the same patch.
ASSIGNED_AT_ANNOTATION = "bmfleet.io/assigned-at"


class DesiredModel(ApiModel):
    """One model the device should run (install) or roll back (rollback)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.action != 'install' || (has(self.digest) && has(self.size) && has(self.uri) && has(self.chip))",
                "install needs digest, size, uri and chip",
            )
        )
    }

    name: ModelName = Field(description="Model name on the device (a directory name there).")
    action: Action = Field(
        "install", description="install: run `digest`. rollback: return to the device's kept previous model."
    )
    digest: Digest | None = Field(
        None, description="sha256:<hex> of the bmodel. For rollback: the previous digest it must be (optional)."
    )
    size: int | None = Field(
        None,
        ge=1,
        description="Bytes of the bmodel; the agent refuses a blob of another size.",
        json_schema_extra=INT64,
    )
    chip: Chip | None = Field(None, description="Chip the bmodel was built for; other chips refuse it.")
    uri: Uri | None = Field(
        None,
        description="Store URI of the blob, which the gateway serves by digest: pvc://<claim>/<prefix>/blobs/sha256/"
        "<hex>, oci://<host>/<repo>@sha256:<hex> or file:///<path>.",
    )
    activate_at: datetime | None = Field(None, description="Stage now, swap in at this time (RFC 3339).")
    rollout: str | None = Field(None, max_length=253, description="The BModelRollout that wrote this entry.")
    generation: int | None = Field(
        None, ge=0, description="That rollout's metadata.generation when it wrote this entry.", json_schema_extra=INT64
    )


class DesiredState(ApiModel):
    """Everything the device should run, as one versioned document (the agent long-polls it by version)."""

    version: int = Field(0, ge=0, description="Bumped on every change of models.", json_schema_extra=INT64)
    models: Annotated[list[DesiredModel], Field(max_length=64)] = Field(
        default_factory=list,
        description="One entry per model name. A model the list does not name is left as it is on the device.",
        json_schema_extra=list_map("name"),
    )


class EdgeDeviceSpec(ApiModel):
    """What the box is and what it should run."""

    chip: Chip = Field(description="The SOPHON chip of the box; rollouts skip it for bmodels of another chip.")
    site: str | None = Field(None, max_length=253, description="Where the box is, for people.")
    desired: DesiredState | None = Field(
        None, description="Desired models. Written only by the rollout controller; read by the gateway."
    )
    revoked_credentials: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=256)] = Field(
        default_factory=list,
        description="Credential ids an admin revoked; the gateway refuses them at once.",
        json_schema_extra=list_type("set"),
    )


class Credential(ApiModel):
    """One device credential: its hash only, never the token."""

    id: str = Field(max_length=128, description="Credential id (what spec.revokedCredentials names).")
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$", description="Hex sha256 of the token.")
    issued_at: datetime = Field(description="When the gateway issued it.")
    not_after: datetime | None = Field(None, description="When it stops being accepted.")


class ModelStatus(ApiModel):
    """The state of one model's latest request on the device."""

    name: ModelName = Field(description="Model name.")
    state: ModelState = Field(description="Downloading, Staged, Active, Failed or RolledBack.")
    reason: str | None = Field(None, max_length=256, description="Why (with Failed): DigestMismatch, ProbeFailed...")
    message: str | None = Field(None, max_length=4096, description="Details for people.")
    desired_digest: Digest | None = Field(None, description="The digest the latest request asks for.")
    staged_digest: Digest | None = Field(None, description="Downloaded and verified, waiting to be activated.")
    active_digest: Digest | None = Field(None, description="What runs now.")
    previous_digest: Digest | None = Field(None, description="What a rollback returns to.")
    bytes: int | None = Field(None, ge=0, description="Bytes of desiredDigest on disk.", json_schema_extra=INT64)
    size: int | None = Field(None, ge=0, description="Size of desiredDigest.", json_schema_extra=INT64)


class EdgeDeviceStatus(ApiModel):
    """What the device last reported, written by the gateway in batches (status subresource)."""

    observed_generation: int | None = Field(
        None, description="metadata.generation the gateway last saw.", json_schema_extra=INT64
    )
    registered_at: datetime | None = Field(None, description="When the device registered.")
    last_seen: datetime | None = Field(None, description="Time of the last report or poll.")
    chip: str | None = Field(None, max_length=32, description="The chip the agent reports.")
    agent_version: str | None = Field(None, max_length=64, description="bmfleet-agent version.")
    sdk_version: str | None = Field(None, max_length=64, description="libsophon / SOPHON SDK version.")
    desired_version: int | None = Field(
        None, description="spec.desired.version the agent last acted on.", json_schema_extra=INT64
    )
    last_error: str | None = Field(None, max_length=4096, description="The agent's last error, if any.")
    credentials: Annotated[list[Credential], Field(max_length=16)] = Field(
        default_factory=list, description="Credential hashes.", json_schema_extra=list_map("id")
    )
    models: Annotated[list[ModelStatus], Field(max_length=64)] = Field(
        default_factory=list, description="One entry per model.", json_schema_extra=list_map("name")
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (online and converged) and Online (heartbeat within 3x its interval).",
    )
