"""The one condition helper: stable lastTransitionTime, observedGeneration always stamped (cert-manager style)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
COMPILED = "Compiled"
COMBINED = "Combined"
GATES_PASSED = "GatesPassed"
PUBLISHED = "Published"
PROGRESSING = "Progressing"
ABORTED = "Aborted"


@dataclass(frozen=True)
class Cond:
    """What a controller wants a condition to say; time and generation are added by `set_condition`."""

    type: str
    status: Status
    reason: str
    message: str


def now_rfc3339() -> str:
    """Kubernetes' time format (second precision, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]], cond: Cond, generation: int, now: str | None = None
) -> list[dict[str, Any]]:
    """Return a copy of `conditions` with `cond` applied.

    `lastTransitionTime` changes only when the status flips, so dashboards and kstatus see real transitions,
    not reconcile ticks. Order is kept; a new type is appended.
    """
    out: list[dict[str, Any]] = []
    found = False
    for c in conditions:
        if c.get("type") != cond.type:
            out.append(dict(c))
            continue
        found = True
        ltt = c.get("lastTransitionTime") if c.get("status") == cond.status else None
        out.append(_render(cond, generation, ltt or now or now_rfc3339()))
    if not found:
        out.append(_render(cond, generation, now or now_rfc3339()))
    return out


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    """Whether the condition exists and is True."""
    c = get_condition(conditions, type_)
    return c is not None and c.get("status") == "True"


def _render(cond: Cond, generation: int, ltt: str) -> dict[str, Any]:
    return {
        "type": cond.type,
        "status": cond.status,
        "observedGeneration": generation,
        "lastTransitionTime": ltt,
        "reason": cond.reason,
        "message": cond.message[:32768],
    }
