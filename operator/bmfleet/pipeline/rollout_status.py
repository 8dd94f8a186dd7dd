"""Rollout conditions: one table from the rollout phase to Ready/Reconciling/Stalled (kstatus) plus Progressing
and Aborted, so every status the controller writes says the same thing the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from bmfleet.api.conditions import ABORTED, PROGRESSING, READY, RECONCILING, STALLED, Cond, Status, set_condition

# A device's state with respect to one rollout's current request.
PENDING, DOWNLOADING, STAGED, ACTIVE, FAILED = "Pending", "Downloading", "Staged", "Active", "Failed"
TIMED_OUT = "TimedOut"  # online and not done in time: counted failed
AWAY = "Away"  # offline and not done in time: no longer waited for, not counted failed
ROLLING_BACK, ROLLED_BACK = "RollingBack", "RolledBack"
UNFINISHED = (PENDING, DOWNLOADING, STAGED)

# phase -> (Ready, Reconciling, Stalled, Progressing, Aborted)
_TABLE: dict[str, tuple[Status, Status, Status, Status, Status]] = {
    "Progressing": ("False", "True", "False", "True", "False"),
    "Paused": ("False", "False", "False", "False", "False"),
    "Completed": ("True", "False", "False", "False", "False"),
    "Aborted": ("False", "True", "False", "False", "True"),  # rolling back: still work in flight
    "AbortedFinal": ("False", "False", "True", "False", "True"),  # no rollback: nothing more will happen
    "RolledBack": ("False", "False", "True", "False", "True"),
    "Waiting": ("False", "True", "False", "False", "False"),  # for the build's artifact
    "Stalled": ("False", "False", "True", "False", "False"),  # invalid spec, failed build
}


def rollout_conditions(
    conditions: list[dict[str, Any]], key: str, reason: str, message: str, generation: int, now: str | None = None
) -> list[dict[str, Any]]:
    """`conditions` with all five set for `key` (a row of the table above)."""
    ready, reconciling, stalled, progressing, aborted = _TABLE[key]
    for cond in (
        Cond(READY, ready, reason, message),
        Cond(RECONCILING, reconciling, reason, message if reconciling == "True" else "no work in flight"),
        Cond(STALLED, stalled, reason, message if stalled == "True" else "not stalled"),
        Cond(PROGRESSING, progressing, reason, message),
        Cond(ABORTED, aborted, reason if aborted == "True" else "NotAborted", message if aborted == "True" else ""),
    ):
        conditions = set_condition(conditions, cond, generation, now)
    return conditions


def unresolved_status(
    previous: dict[str, Any] | None, generation: int, stalled: bool, reason: str, message: str, now: str | None = None
) -> dict[str, Any]:
    """Status while there is no artifact to roll out (build in progress or failed, invalid spec): what the last
    plan said stays, the conditions say why nothing moves."""
    prev = dict(previous or {})
    prev["observedGeneration"] = generation
    prev["conditions"] = rollout_conditions(
        list(prev.get("conditions") or []), "Stalled" if stalled else "Waiting", reason, message, generation, now
    )
    return prev


def device_counts(selected: int, skipped: int, targeted: Sequence[tuple[str, bool]]) -> dict[str, int]:
    """status.counts from the (state, online) of each targeted device."""
    states = Counter(state for state, _ in targeted)
    return {
        "selected": selected,
        "skipped": skipped,
        "targeted": len(targeted),
        "downloading": states[DOWNLOADING],
        "staged": states[STAGED],
        "active": states[ACTIVE],
        "failed": states[FAILED] + states[TIMED_OUT],
        "rolledBack": states[ROLLED_BACK],
        "offline": sum(1 for _, online in targeted if not online),
    }


def summary(phase: str, index: int, targets: list[int], c: dict[str, int], held: int, chip: str, detail: str) -> str:
    """The condition message: where the rollout is and why, in one line."""
    head = f"{phase}: phase {index + 1}/{len(targets)} (target {targets[index]} of {targets[-1]} eligible devices)"
    body = (
        f"{c['targeted']} targeted, {c['active']} active, {c['failed']} failed, {c['rolledBack']} rolled back, "
        f"{c['offline']} offline; {c['skipped']} skipped (not {chip})"
    )
    extra = [f"{held} held by other rollouts"] if held else []
    return "; ".join([head, body, *extra, *([detail] if detail else [])])
