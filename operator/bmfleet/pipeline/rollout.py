"""Rollout planning, pure: from the rollout, its artifact and what the devices report, the desired entry each
device should hold and the rollout's status. The controller only gathers the inputs and writes the outputs.

Rules (docs/rollouts.md):
- Devices of another chip than the artifact's are skipped (counted, never assigned). A device whose entry for
  the model belongs to another existing rollout is left to it.
- Eligible devices are ordered by sha256(rollout uid / device name): cohorts are stable across restarts and
  differ between rollouts. Phase targets are cumulative (percent rounded up, or a count); assigned devices
  stay assigned. A last target below every eligible device is followed by an implicit 100% phase.
- A phase completes when each of its devices is Active, Failed or past deviceTimeoutSeconds since its
  assignment (or since it came back online): online, that counts as failed; offline, the device is no longer
  waited for but keeps its assignment and converges later. Its pause (seconds, or manual until annotation
  rollouts.bmfleet.io/promote >= the next index) follows; spec.paused stops new assignments.
- At most maxInFlight online devices are assigned but not yet Active, Failed or timed out.
- failed / finished > maxFailurePercent once minDevices finished aborts; with autoRollback every assigned
  device gets a rollback entry (to the digest it ran before), and the rollout is RolledBack once none is
  still rolling back.
- Once Completed, devices that appear get the release at once. A new artifact digest starts over at phase 0.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bmfleet.api.rollout import PROMOTE_ANNOTATION, AbortPolicy, BModelRolloutSpec, RolloutStep
from bmfleet.pipeline.rollout_status import (
    ACTIVE,
    AWAY,
    DOWNLOADING,
    FAILED,
    PENDING,
    ROLLED_BACK,
    ROLLING_BACK,
    STAGED,
    TIMED_OUT,
    UNFINISHED,
    device_counts,
    rollout_conditions,
    summary,
)
from bmfleet.pipeline.selectors import selects

_FMT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Artifact:
    """The resolved bmodel."""

    digest: str
    uri: str
    size: int
    chip: str

    def to_status(self) -> dict[str, Any]:
        return {"digest": self.digest, "uri": self.uri, "size": self.size, "chip": self.chip}


@dataclass(frozen=True)
class Device:
    """One EdgeDevice as the planner needs it: entries for the rollout's model name only."""

    name: str
    chip: str
    labels: Mapping[str, str] = field(default_factory=dict)
    online: bool = False
    model: Mapping[str, Any] | None = None  # status.models[name == modelName]
    desired: Mapping[str, Any] | None = None  # spec.desired.models[name == modelName]
    assigned_at: datetime | None = None  # when a rollout last changed that entry
    online_since: datetime | None = None  # lastTransitionTime of Online=True


@dataclass(frozen=True)
class RolloutRef:
    """Who plans: the rollout's identity and what only its metadata says."""

    name: str
    uid: str
    generation: int
    promote: int | None = None  # annotation rollouts.bmfleet.io/promote
    others: frozenset[str] = frozenset()  # other rollouts in the namespace


@dataclass
class Plan:
    """The status to write and the desired entries that change (device name -> entry)."""

    status: dict[str, Any]
    desired: dict[str, dict[str, Any]]


def order_key(uid: str, name: str) -> str:
    """Deterministic, rollout-specific position of a device."""
    return hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def targets(steps: Sequence[RolloutStep], eligible: int) -> list[int]:
    """Cumulative device count per phase (never decreasing), plus an implicit final phase for the rest."""
    out, last = [], 0
    for step in steps:
        want = -(-step.percent * eligible // 100) if step.percent is not None else int(step.count or 0)
        last = max(last, min(want, eligible))
        out.append(last)
    if out[-1] < eligible:
        out.append(eligible)
    return out


def format_time(t: datetime) -> str:
    return t.strftime(_FMT)


def parse_time(text: Any) -> datetime | None:
    """RFC 3339 as the API writes it; a time without an offset is UTC; unreadable is None."""
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class _Planner:
    """One planning pass: the entries written so far and each device's state under them."""

    def __init__(self, spec: BModelRolloutSpec, art: Artifact, now: datetime, ref: RolloutRef) -> None:
        self.spec, self.art, self.now, self.ref = spec, art, now, ref
        self.writes: dict[str, dict[str, Any]] = {}
        self.assigned_at: dict[str, datetime | None] = {}

    def entry(self, d: Device) -> Mapping[str, Any] | None:
        return self.writes.get(d.name, d.desired)

    def ours(self, d: Device) -> bool:
        e = self.entry(d)
        return e is not None and e.get("rollout") == self.ref.name

    def installing(self, d: Device) -> bool:
        e = self.entry(d)
        return (
            self.ours(d)
            and e is not None
            and e.get("action", "install") == "install"
            and e.get("digest") == (self.art.digest)
        )

    def rolling_back(self, d: Device) -> bool:
        e = self.entry(d)
        return self.ours(d) and e is not None and e.get("action") == "rollback"

    def timed_out(self, d: Device) -> bool:
        """Not done in time. For an online device the clock starts at assignment or when it came back online,
        whichever is later: a device is not failed for the time it was away."""
        at = self.assigned_at.get(d.name, d.assigned_at)
        if at is None:
            return False
        start = max(at, d.online_since) if d.online and d.online_since else at
        return self.now - start >= timedelta(seconds=self.spec.strategy.device_timeout_seconds)

    def late(self, d: Device, state: str) -> str:
        """An unfinished device past its timeout: failed when online (stuck), away when offline."""
        if not self.timed_out(d):
            return state
        return TIMED_OUT if d.online else AWAY

    def state(self, d: Device) -> str:
        """Where the device is with this rollout's current request."""
        m, e = d.model or {}, self.entry(d) or {}
        st = m.get("state")
        if self.rolling_back(d):
            want = e.get("digest")
            if st == "RolledBack" and (want is None or m.get("activeDigest") == want):
                return ROLLED_BACK
            if st == "Failed" and (want is None or m.get("desiredDigest") == want):
                return FAILED
            return self.late(d, ROLLING_BACK)
        if st == "Active" and m.get("activeDigest") == self.art.digest:
            return ACTIVE
        st = DOWNLOADING if st == FAILED and m.get("reason") in ("DownloadFailed", "DigestMismatch") else st  # retried
        base = st if m.get("desiredDigest") == self.art.digest and st in (DOWNLOADING, STAGED, FAILED) else PENDING
        return base if base == FAILED else self.late(d, base)

    def write(self, d: Device, entry: dict[str, Any]) -> None:
        self.writes[d.name] = entry
        self.assigned_at[d.name] = self.now

    def install(self, d: Device) -> None:
        entry = {"name": self.spec.model_name, "action": "install", **self.art.to_status()}
        self.write(d, entry | {"rollout": self.ref.name, "generation": self.ref.generation})

    def rollback(self, d: Device) -> None:
        m = d.model or {}
        to = m.get("previousDigest") if m.get("activeDigest") == self.art.digest else m.get("activeDigest")
        entry: dict[str, Any] = {"name": self.spec.model_name, "action": "rollback", "rollout": self.ref.name}
        entry["generation"] = self.ref.generation
        self.write(d, entry | ({"digest": to} if to else {}))


def plan(
    spec: BModelRolloutSpec,
    artifact: Artifact,
    devices: Sequence[Device],
    now: datetime,
    previous_status: Mapping[str, Any] | None,
    ref: RolloutRef,
) -> Plan:
    """The next step of the rollout (idempotent: planning again on the same inputs writes nothing new)."""
    p = _Planner(spec, artifact, now, ref)
    prev = dict(previous_status or {})
    same = (prev.get("artifact") or {}).get("digest") == artifact.digest
    phase = prev.get("phase") if same else None
    index = int(prev.get("currentPhase") or 0) if same else 0
    completed_at = parse_time(prev.get("phaseCompletedAt")) if same else None

    selected = [d for d in devices if selects(spec.selector, d.labels)]
    skipped = [d for d in selected if d.chip != artifact.chip]
    claimed = [d for d in selected if d.chip == artifact.chip and (d.desired or {}).get("rollout") in ref.others]
    held = {d.name for d in claimed}
    eligible = sorted(
        (d for d in selected if d.chip == artifact.chip and d.name not in held),
        key=lambda d: order_key(ref.uid, d.name),
    )
    tgts = targets(spec.strategy.phases, len(eligible))
    index = min(index, len(tgts) - 1)
    strategy = spec.strategy
    reason, detail = "", ""

    if phase == "Completed":
        key, reason = "Completed", "Completed"
        if not spec.paused:  # late joiners get the release at once
            for d in eligible:
                if not p.installing(d):
                    p.install(d)
    elif phase in ("Aborted", "RolledBack") or _abort_due(p, eligible, strategy.abort):
        key, reason = _after_abort(p, eligible, phase or "Aborted", strategy.auto_rollback)
    else:
        key, reason, index, completed_at, detail = _progress(p, eligible, tgts, index, completed_at)
    phase_name = {"AbortedFinal": "Aborted"}.get(key, key)
    if key == "Completed" and completed_at is None:
        completed_at = now

    targeted = [d for d in eligible if p.installing(d) or p.rolling_back(d)]
    counts = device_counts(len(selected), len(skipped), [(p.state(d), d.online) for d in targeted])
    message = summary(phase_name, index, tgts, counts, len(claimed), artifact.chip, detail)
    conditions = rollout_conditions(
        list(prev.get("conditions") or []), key, reason, message, ref.generation, format_time(now)
    )
    status = {
        "observedGeneration": ref.generation,
        "phase": phase_name,
        "currentPhase": index,
        "phaseCompletedAt": format_time(completed_at) if completed_at else None,
        "artifact": artifact.to_status(),
        "counts": counts,
        "conditions": conditions,
    }
    before = {d.name: d.desired for d in devices}
    return Plan(status, {n: e for n, e in p.writes.items() if _changed(before.get(n), e)})


def _progress(
    p: _Planner, eligible: list[Device], tgts: list[int], index: int, completed_at: datetime | None
) -> tuple[str, str, int, datetime | None, str]:
    """Assign the current phase's cohort, and move on while phases complete and pauses are over."""
    spec = p.spec
    while True:
        if not spec.paused:
            _assign(p, eligible, tgts[index])
        installing = [d for d in eligible if p.installing(d)]
        busy = [d for d in installing if p.state(d) in UNFINISHED]  # offline ones until their timeout
        if len(installing) < tgts[index] or busy:
            key, reason = ("Paused", "PausedBySpec") if spec.paused else ("Progressing", "PhaseInProgress")
            return key, reason, index, None, ""
        if index == len(tgts) - 1:
            return "Completed", "Completed", index, completed_at, ""
        completed_at = completed_at or p.now
        pause = spec.strategy.phases[index].pause if index < len(spec.strategy.phases) else None
        if spec.paused:
            return "Paused", "PausedBySpec", index, completed_at, ""
        if pause is not None and pause.manual and (p.ref.promote is None or p.ref.promote < index + 1):
            detail = f"waiting for `kubectl annotate bmr {p.ref.name} {PROMOTE_ANNOTATION}={index + 1} --overwrite`"
            return "Paused", "WaitingForPromotion", index, completed_at, detail
        if pause is not None and pause.seconds and p.now < completed_at + timedelta(seconds=pause.seconds):
            at = format_time(completed_at + timedelta(seconds=pause.seconds))
            return "Progressing", "PhasePause", index, completed_at, f"next phase at {at}"
        index, completed_at = index + 1, None


def _assign(p: _Planner, eligible: list[Device], target: int) -> None:
    """Assign devices in order until `target` hold the release, within maxInFlight (offline devices and ones
    already running the artifact take no slot)."""
    assigned = sum(1 for d in eligible if p.installing(d))
    busy = sum(1 for d in eligible if p.installing(d) and d.online and p.state(d) in UNFINISHED)
    slots = p.spec.strategy.max_in_flight - busy
    for d in eligible:
        if assigned >= target:
            return
        if p.installing(d):
            continue
        takes_slot = d.online and p.state(d) != ACTIVE
        if takes_slot and slots <= 0:
            return
        p.install(d)
        assigned += 1
        slots -= takes_slot


def _abort_due(p: _Planner, eligible: list[Device], policy: AbortPolicy) -> bool:
    states = Counter(p.state(d) for d in eligible if p.installing(d))
    failed = states[FAILED] + states[TIMED_OUT]
    finished = failed + states[ACTIVE]
    return finished >= policy.min_devices and failed * 100 > policy.max_failure_percent * finished


def _after_abort(p: _Planner, eligible: list[Device], phase: str, auto_rollback: bool) -> tuple[str, str]:
    """Every assigned device gets a rollback entry (again after a restart: idempotent); the rollout is Aborted
    while devices still roll back, RolledBack once none does (offline ones converge later)."""
    if not auto_rollback:
        return "AbortedFinal", "FailureThresholdExceeded"
    for d in eligible:
        if p.installing(d):
            p.rollback(d)
    going = [d for d in eligible if p.rolling_back(d) and p.state(d) == ROLLING_BACK]
    if phase == "RolledBack" or not going:
        return "RolledBack", "RolledBack"
    return "Aborted", "RollingBack"


_SAME = ("action", "digest", "size", "chip", "uri", "rollout")


def _changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Only a different request is a change: a new generation alone does not make devices start over."""
    return old is None or any(old.get(k, "install" if k == "action" else None) != new.get(k) for k in _SAME)
