"""kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status) for custom resources, as a test oracle.

`compute` follows `Compute` -> `checkGenericProperties` (generic.go) for a kind with no built-in rules:
1. metadata.deletionTimestamp set -> Terminating;
2. metadata.generation and status.observedGeneration both present and different -> InProgress
   (LatestGenerationNotObserved); an absent observedGeneration skips the check;
3. the first condition (in list order) that is Reconciling=True -> InProgress, or Stalled=True -> Failed;
4. the `Ready` fallback of the kstatus README ("The Ready Condition"): Ready=True -> Current,
   Ready=False or Unknown -> InProgress;
5. otherwise Current ("abnormal-true" polarity: no condition means all is well).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CURRENT, IN_PROGRESS, FAILED, TERMINATING = "Current", "InProgress", "Failed", "Terminating"

# How a kstatus result reads in Argo CD's vocabulary (Argo CD itself reports objects being deleted as
# Progressing, "Pending deletion").
ARGO_HEALTH = {CURRENT: "Healthy", IN_PROGRESS: "Progressing", FAILED: "Degraded", TERMINATING: "Progressing"}


@dataclass(frozen=True)
class Result:
    """kstatus' status and message."""

    status: str
    message: str


def compute(obj: dict[str, Any]) -> Result:
    """The kstatus status of a custom resource."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Result(TERMINATING, "Resource scheduled for deletion")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and generation != observed:
        kind = obj.get("kind", "")
        return Result(IN_PROGRESS, f"{kind} generation is {generation}, but latest observed generation is {observed}")
    conditions = status.get("conditions") or []
    for c in conditions:
        if c.get("type") == "Reconciling" and c.get("status") == "True":
            return Result(IN_PROGRESS, c.get("message", ""))
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return Result(FAILED, c.get("message", ""))
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("status") != "True":
        return Result(IN_PROGRESS, ready.get("message", ""))
    return Result(CURRENT, "Resource is current")


def argo_health(obj: dict[str, Any]) -> str:
    """The Argo CD health status that the kstatus result maps to."""
    return ARGO_HEALTH[compute(obj).status]
