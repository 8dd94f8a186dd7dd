"""BModelRollout (`bmr`): which bmodel runs under which model name on which EdgeDevices, reached in phases.

Phases are cumulative targets over the eligible devices (selected and of the artifact's chip), each followed
by an optional pause; failures past a threshold abort the rollout and, by default, roll the cohort back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from bmfleet.api.common import ApiModel, Chip, Uri, cel, validations
from bmfleet.api.device import Digest, ModelName
from bmfleet.api.schema_extras import INT64, Condition

LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]
RolloutPhaseName = Literal["Progressing", "Paused", "Completed", "Aborted", "RolledBack"]

# Manual promotion: `kubectl annotate bmr <name> rollouts.bmfleet.io/promote=<n>` lets phase n (and those before)
# start. Not under `bmfleet.io/`: kopf keeps its own state there and ignores changes to those annotations.
PROMOTE_ANNOTATION = "rollouts.bmfleet.io/promote"


class LabelSelectorRequirement(ApiModel):
    """One label requirement, as in metav1.LabelSelector."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : "
                "!has(self.values) || size(self.values) == 0",
                "In and NotIn need values; Exists and DoesNotExist take none",
                ".values",
            )
        )
    }

    key: LabelKey = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How the key relates to values.")
    values: Annotated[list[LabelValue], Field(max_length=64)] = Field(
        default_factory=list, description="Values for In and NotIn."
    )


class LabelSelector(ApiModel):
    """metav1.LabelSelector over EdgeDevice labels; an empty selector selects every device in the namespace."""

    match_labels: dict[LabelKey, LabelValue] | None = Field(
        None, json_schema_extra={"maxProperties": 32}, description="Labels a device must have, with these values."
    )
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] | None = Field(
        None, description="Requirements a device's labels must all meet."
    )


class ArtifactRef(ApiModel):
    """The bmodel to roll out: a BModelBuild's combined artifact, or a stored blob given directly."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.build) ? !(has(self.digest) || has(self.uri) || has(self.size) || has(self.chip)) : "
                "(has(self.digest) && has(self.uri) && has(self.size) && has(self.chip))",
                "set either build, or all of digest, uri, size and chip",
            )
        )
    }

    build: str | None = Field(
        None,
        max_length=253,
        description="A BModelBuild in this namespace; its combined bmodel is used once the build is Ready.",
    )
    digest: Digest | None = Field(None, description="sha256:<hex> of the bmodel.")
    uri: Uri | None = Field(None, description="Store URI of the blob (pvc://, oci:// or file://).")
    size: int | None = Field(None, ge=1, description="Size of the bmodel in bytes.", json_schema_extra=INT64)
    chip: Chip | None = Field(None, description="Chip the bmodel was built for.")


class Pause(ApiModel):
    """What happens after a phase completed, before the next one starts."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("!(has(self.seconds) && self.manual)", "set seconds or manual, not both", ".manual")
        )
    }

    seconds: int | None = Field(None, ge=0, le=30 * 86400, description="Wait this long.")
    manual: bool = Field(
        False, description=f"Wait until annotation {PROMOTE_ANNOTATION} on the rollout is at least the next index."
    )


class RolloutStep(ApiModel):
    """One phase: a cumulative target (percent of the eligible devices, rounded up, or a device count)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("has(self.percent) != has(self.count)", "set exactly one of percent or count")
        )
    }

    percent: int | None = Field(None, ge=1, le=100, description="Target: this percent of eligible devices (ceil).")
    count: int | None = Field(None, ge=1, le=1_000_000, description="Target: this many eligible devices in total.")
    pause: Pause | None = Field(None, description="Pause after this phase completes (ignored after the last).")


class AbortPolicy(ApiModel):
    """When failures stop the rollout."""

    max_failure_percent: int = Field(
        10, ge=0, le=100, description="Abort when failed / finished devices exceeds this percent."
    )
    min_devices: int = Field(5, ge=1, le=1_000_000, description="...but only once this many devices finished.")


DEFAULT_PHASES = [{"percent": 10}, {"percent": 50}, {"percent": 100}]


class Strategy(ApiModel):
    """How fast, how carefully."""

    phases: Annotated[list[RolloutStep], Field(min_length=1, max_length=20)] = Field(
        default=[RolloutStep.model_validate(p) for p in DEFAULT_PHASES],
        description="Phases in order, with non-decreasing targets. When the last target is below every eligible "
        "device, an implicit final phase of 100% follows.",
        json_schema_extra=validations(
            cel(
                "self.filter(p, has(p.percent)).map(p, p.percent).isSorted() && "
                "self.filter(p, has(p.count)).map(p, p.count).isSorted()",
                "phase targets must not decrease",
            )
        ),
    )
    max_in_flight: int = Field(
        50, ge=1, le=100_000, description="Online devices assigned but not yet Active or Failed, at most."
    )
    device_timeout_seconds: int = Field(
        900, ge=1, le=7 * 86400, description="An online device not Active or Failed this long after assignment fails."
    )
    abort: AbortPolicy = Field(default_factory=AbortPolicy, description="When failures stop the rollout.")
    auto_rollback: bool = Field(True, description="On abort, roll every assigned device back to its previous model.")


class BModelRolloutSpec(ApiModel):
    """Which bmodel, under which model name, on which devices, and how fast."""

    artifact: ArtifactRef = Field(description="The bmodel to roll out.")
    model_name: ModelName = Field(description="Name of the model on the devices.")
    selector: LabelSelector = Field(description="EdgeDevices (same namespace) to roll out to, by label.")
    strategy: Strategy = Field(default_factory=Strategy, description="Phases, in-flight limit, timeouts, abort.")
    paused: bool = Field(False, description="Assign no further devices (rollbacks still proceed).")


class ResolvedArtifact(ApiModel):
    """The artifact this status describes."""

    digest: str = Field(description="sha256:<hex> of the bmodel.")
    uri: str = Field(description="Store URI of the blob.")
    size: int = Field(description="Size in bytes.", json_schema_extra=INT64)
    chip: str = Field(description="Chip it was built for.")


class Counts(ApiModel):
    """Devices of this rollout by state."""

    selected: int = Field(0, description="Devices the selector matches.")
    skipped: int = Field(0, description="Selected devices of another chip than the artifact's (never assigned).")
    targeted: int = Field(0, description="Devices holding this rollout's entry for the current artifact.")
    downloading: int = Field(0, description="Targeted devices downloading it.")
    staged: int = Field(0, description="Targeted devices that staged it.")
    active: int = Field(0, description="Targeted devices running it.")
    failed: int = Field(0, description="Targeted devices that failed it, or timed out.")
    rolled_back: int = Field(0, description="Devices that rolled back after an abort.")
    offline: int = Field(0, description="Targeted devices not online.")


class BModelRolloutStatus(ApiModel):
    """Observed state; kstatus-compatible (observedGeneration, Ready/Reconciling/Stalled)."""

    observed_generation: int | None = Field(None, description="Generation this status describes.")
    phase: RolloutPhaseName | None = Field(
        None, description="Progressing, Paused, Completed, Aborted (rolling back) or RolledBack."
    )
    current_phase: int | None = Field(None, description="Index of the phase being rolled out or paused after.")
    phase_completed_at: datetime | None = Field(
        None, description="When the current phase completed (its pause counts from here)."
    )
    artifact: ResolvedArtifact | None = Field(None, description="The artifact, resolved (from the build, if any).")
    counts: Counts | None = Field(None, description="Devices by state.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Reconciling, Stalled (kstatus), Progressing and Aborted."
    )
