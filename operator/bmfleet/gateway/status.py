"""Device reports to EdgeDevice status, coalesced: at most one write per device per flush, none when nothing
changed.

Kubernetes has no multi-object write, so "batching" means: reports land in memory (a newer one replaces an older
one — each is a full snapshot), and every `interval` (or when `max_batch` devices are waiting) one flush sends one
merge patch per device that actually changed, a few in parallel. A fleet re-sending the same heartbeat costs the
API server nothing but a lastSeen refresh every `last_seen_interval`; offline devices are marked by a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from bmfleet.gateway.kube import Kube
from bmfleet.gateway.metrics import GatewayMetrics
from bmfleet.gateway.view import Device, View, format_time, parse_time

log = logging.getLogger(__name__)

STATES = {"Downloading", "Staged", "Active", "Failed", "RolledBack"}
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
REASON = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
MAX_MODELS = 32


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def sanitize(report: Any) -> dict[str, Any]:
    """The contract's status fields from an agent report (limits as in bmfleet.api.device); anything malformed is
    left out, never passed on, so one bad report cannot make the device's status unwritable."""
    if not isinstance(report, dict):
        return {}
    out: dict[str, Any] = {}
    for key, limit in (("chip", 32), ("agentVersion", 64), ("sdkVersion", 64)):
        if (v := _text(report.get(key), limit)) is not None:
            out[key] = v
    if (v := _text(report.get("lastError"), 4096)) is not None:
        out["lastError"] = v
    if (n := _count(report.get("desiredVersion"))) is not None:
        out["desiredVersion"] = n
    models = []
    for m in report.get("models") or []:
        if not isinstance(m, dict) or not NAME.match(str(m.get("name"))) or m.get("state") not in STATES:
            continue
        entry: dict[str, Any] = {"name": m["name"], "state": m["state"]}
        if isinstance(m.get("reason"), str) and REASON.match(m["reason"]):
            entry["reason"] = m["reason"]
        if m.get("message") and (v := _text(m["message"], 4096)) is not None:
            entry["message"] = v
        for key in ("desiredDigest", "stagedDigest", "activeDigest", "previousDigest"):
            if isinstance(m.get(key), str) and DIGEST.match(m[key]):
                entry[key] = m[key]
        for src, dst in (("bytesDownloaded", "bytes"), ("size", "size")):
            if (n := _count(m.get(src))) is not None:
                entry[dst] = n
        models.append(entry)
    if isinstance(report.get("models"), list):
        out["models"] = sorted(models, key=lambda e: str(e["name"]))[:MAX_MODELS]
    return out


def converged(device: Device, report: dict[str, Any]) -> tuple[bool, str, str]:
    """(ready, reason, message): has the device done everything its desired state asks?"""
    if report.get("desiredVersion") != device.version:
        acted = report.get("desiredVersion")
        return False, "Progressing", f"device acted on desired version {acted}, not {device.version}"
    models = {m["name"]: m for m in report.get("models") or []}
    for name, (action, digest) in sorted(device.targets.items()):
        m = models.get(name, {})
        if m.get("state") == "Failed":
            return False, "Failed", f"{name}: {m.get('reason', '')} {m.get('message', '')}".strip()
        done = m.get("state") == ("RolledBack" if action == "rollback" else "Active")
        if not done or (digest is not None and m.get("activeDigest") != digest):
            return False, "Progressing", f"{name}: {m.get('state', 'not reported')}"
    return True, "Converged", "every desired model is active"


def _condition(old: list[dict[str, Any]], type_: str, ok: bool, reason: str, message: str, now: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == type_), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    return {"type": type_, "status": status, "reason": reason, "message": message[:1024], "lastTransitionTime": since}


def _api_message(e: BaseException) -> str:
    body = getattr(e, "body", None)
    return str(body)[:500] if body else str(e)[:300]


def _online(device: Device) -> bool:
    return any(c.get("type") == "Online" and c.get("status") == "True" for c in device.status.get("conditions") or [])


@dataclass
class _Pending:
    report: dict[str, Any] | None  # None: only lastSeen / Online to refresh


class StatusBatcher:
    """Coalesces reports per device and writes them in flushes; `patches` counts API writes."""

    def __init__(
        self,
        kube: Kube,
        view: View,
        metrics: GatewayMetrics,
        interval: float = 1.0,
        max_batch: int = 500,
        concurrency: int = 8,
        heartbeat: float = 60.0,
        last_seen_interval: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.view, self.metrics = kube, view, metrics
        self.interval, self.max_batch = interval, max_batch
        self.offline_after = 3 * heartbeat
        # Another replica judges Online from status.lastSeen: it must stay well inside the offline threshold.
        self.last_seen_interval = min(last_seen_interval, self.offline_after / 1.5)
        self.clock = clock
        self.pending: dict[str, _Pending] = {}
        self.seen: dict[str, float] = {}  # device -> last authenticated request here
        self.rejected: dict[str, float] = {}  # device -> when the API server last refused its status (422)
        self.reports = self.patches = self.batches = 0
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="status-writer")
        metrics.pending.set_function(lambda: len(self.pending))
        self._wake = asyncio.Event()
        self._last_sweep = 0.0

    def touch(self, name: str) -> None:
        """Any authenticated request is a sign of life (the agent reports only on change or each heartbeat); a
        device not yet marked Online gets its write in the next flush, not the next sweep."""
        self.seen[name] = self.clock()
        device = self.view.devices.get(name)
        refused_lately = self.clock() - self.rejected.get(name, -1e9) < 60  # do not hammer a write it refuses
        if device is not None and name not in self.pending and not _online(device) and not refused_lately:
            self.pending[name] = _Pending(None)

    def report(self, name: str, fragment: dict[str, Any]) -> None:
        self.reports += 1
        self.metrics.reports.inc()
        self.pending[name] = _Pending(fragment)
        if len(self.pending) >= self.max_batch:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("status flush failed")
        await self.flush()
        self.pool.shutdown(wait=False)

    def _sweep(self, now: float) -> None:
        """Queue lastSeen refreshes and Online flips for devices with no report pending."""
        for name, device in self.view.devices.items():
            if name in self.pending:
                continue
            seen = max(self.seen.get(name, 0.0), parse_time(device.status.get("lastSeen")) or 0.0)
            online = next((c for c in device.status.get("conditions") or [] if c.get("type") == "Online"), None)
            stale = self.seen.get(name, 0.0) - (parse_time(device.status.get("lastSeen")) or 0.0)
            if stale >= self.last_seen_interval or (
                online is not None and (online.get("status") == "True") != (now - seen < self.offline_after)
            ):
                self.pending[name] = _Pending(None)

    def _patch(self, device: Device, pending: _Pending, now: float) -> tuple[dict[str, Any], bool] | None:
        """(merge patch, whether it says something new) or None when there is nothing to write. A lastSeen-only
        refresh is not new: it goes after the reports that change what a controller sees."""
        status = device.status
        seen = max(self.seen.get(device.name, 0.0), parse_time(status.get("lastSeen")) or 0.0)
        patch: dict[str, Any] = dict(pending.report or {})
        online = now - seen < self.offline_after
        stamp = format_time(now)
        full = {k: status.get(k) for k in ("desiredVersion", "models")} | patch
        ready, reason, message = converged(device, full) if online else (False, "Offline", "no contact")
        old = status.get("conditions") or []
        patch["conditions"] = [
            _condition(old, "Ready", ready, reason, message, stamp),
            _condition(old, "Online", online, "Heartbeat" if online else "NoHeartbeat",
                       f"last contact {format_time(seen)}" if seen else "never seen", stamp),
        ]  # fmt: skip
        if full.get("desiredVersion") == device.version:
            patch["observedGeneration"] = device.generation
        changed = {k: v for k, v in patch.items() if status.get(k) != v and k != "conditions"}
        conds_changed = [(c["type"], c["status"], c["reason"]) for c in patch["conditions"]] != [
            (c.get("type"), c.get("status"), c.get("reason")) for c in old
        ]
        refresh = self.seen.get(device.name, 0.0) - (parse_time(status.get("lastSeen")) or 0.0)
        if not changed and not conds_changed and refresh < self.last_seen_interval:
            return None
        if self.seen.get(device.name):
            patch["lastSeen"] = format_time(self.seen[device.name])
        return patch, bool(changed) or conds_changed

    async def flush(self) -> None:
        now = self.clock()
        if now - self._last_sweep >= min(10.0, self.last_seen_interval):
            self._last_sweep = now
            self._sweep(now)
        pending, self.pending = self.pending, {}
        news: list[tuple[str, dict[str, Any]]] = []
        refreshes: list[tuple[str, dict[str, Any]]] = []
        for name, p in pending.items():
            device = self.view.devices.get(name)
            built = self._patch(device, p, now) if device is not None else None
            if built is not None:
                (news if built[1] else refreshes).append((name, built[0]))
        # At most max_batch writes per flush, news first: a backlog of lastSeen refreshes (a big fleet) must not
        # hold back a device reporting Active. What is left waits for the next flush, which follows at once.
        jobs, later = (news + refreshes)[: self.max_batch], (news + refreshes)[self.max_batch :]
        for name, _ in later:
            self.pending.setdefault(name, pending[name])
        if later:
            self._wake.set()
        if not jobs:
            return
        self.batches += 1
        self.metrics.batches.inc()
        loop = asyncio.get_running_loop()
        with self.metrics.flush_seconds.time():
            results = await asyncio.gather(
                *(loop.run_in_executor(self.pool, self.kube.patch_status, n, p) for n, p in jobs),
                return_exceptions=True,
            )
        for (name, _), result in zip(jobs, results, strict=True):
            self.patches += 1
            if isinstance(result, dict):
                self.metrics.writes.labels("ok").inc()
                self.view.apply("MODIFIED", result)
                continue
            code = result.status if isinstance(result, client.ApiException) else 0
            self.metrics.writes.labels(str(code or "error")).inc()
            if code in (404, 422):
                self.rejected[name] = self.clock()
                log.warning("status of %s not written (HTTP %s): %s", name, code, _api_message(result))
            elif name not in self.pending:  # try again next flush unless a newer report replaced it
                self.pending[name] = pending[name]
