"""Bring one model from what is on disk towards what the gateway asked for, one safe step at a time.

download -> verify (size, sha256, header, chip) -> slot -> [wait for activateAt] -> swap -> probe -> keep or
roll back. The record is saved before every swap, so recovery after a crash knows what was in flight.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Optional

from bmfleet_agent import bmodel, fsutil
from bmfleet_agent import protocol as p
from bmfleet_agent.config import Config
from bmfleet_agent.download import DownloadError, fetch
from bmfleet_agent.probe import Probe, ProbeError
from bmfleet_agent.state import ModelRecord
from bmfleet_agent.store import ModelDir
from bmfleet_agent.transport import Transport, TransportError

BACKOFF_BASE = 5.0
BACKOFF_MAX = 3600.0


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, min(attempts - 1, 20))))


class Reconciler:
    def __init__(
        self,
        config: Config,
        transport: Transport,
        now: Callable[[], float],
        probe: Probe,
        blob_headers: Callable[[str], Dict[str, str]],
        save: Callable[[], None],
        log: logging.Logger,
    ) -> None:
        self.config = config
        self.transport = transport
        self.now = now
        self.probe = probe
        self.blob_headers = blob_headers
        self.save = save
        self.log = log
        self.want_network = False  # a pass found a model that needs a download

    def dir(self, name: str) -> ModelDir:
        return ModelDir(self.config.models_dir, name)

    def reconcile(self, m: p.DesiredModel, r: ModelRecord, online: bool) -> Optional[float]:
        """One pass for one model. Returns when to look again (epoch seconds; <= now means at once)."""
        d = self.dir(m.name)
        r.active_digest, r.previous_digest = d.active(), d.previous()
        if r.desired_key != m.key:
            self._start(m, r, d)
        if r.done_key == r.desired_key:
            return None
        target = r.desired_digest
        rollback = m.action == p.ROLLBACK
        if target is None or (rollback and not d.has_slot(target) and r.active_digest != target):
            return self._fail(r, p.NO_PREVIOUS, "no previous model on the device to roll back to", terminal=True)
        if r.active_digest == target:
            self._settled(r, p.ROLLED_BACK if rollback else p.ACTIVE)
            return None
        if m.chip and not bmodel.chip_compatible(m.chip, self.config.chip):
            return self._fail(r, p.CHIP_MISMATCH, f"model is for {m.chip}, device is {self.config.chip}", True)
        if not d.has_slot(target):
            r.staged_digest = None
            if self.now() < r.retry_at:
                return r.retry_at
            if not online:
                self.want_network = True
                return None
            wake = self._download(m, r, d, target)
            if not d.has_slot(target):
                return wake
        r.staged_digest = target
        if m.activate_at is not None and self.now() < m.activate_at:
            if r.state != p.STAGED:
                r.state, r.reason, r.message = p.STAGED, "", f"activates at {p.format_time(m.activate_at)}"
                self.save()
            return m.activate_at
        return self._activate(r, d, target)

    def _start(self, m: p.DesiredModel, r: ModelRecord, d: ModelDir) -> None:
        r.desired_key, r.done_key = m.key, ""
        r.attempts, r.retry_at, r.reason, r.message = 0, 0.0, "", ""
        r.rollout_id, r.generation = m.rollout_id, m.generation
        if m.action == p.ROLLBACK:
            r.desired_digest, r.size = m.digest or r.previous_digest, 0
        else:
            r.desired_digest, r.size = m.digest, m.size
        part = d.part(r.desired_digest) if r.desired_digest else ""
        r.bytes_downloaded = os.path.getsize(part) if part and os.path.exists(part) else 0
        r.state = p.DOWNLOADING
        self.save()

    def _fail(self, r: ModelRecord, reason: str, message: str, terminal: bool) -> Optional[float]:
        r.state, r.reason, r.message = p.FAILED, reason, message
        self.log.warning("model %s: %s: %s", r.desired_digest, reason, message)
        if terminal:
            r.done_key = r.desired_key
        else:
            r.attempts += 1
            r.retry_at = self.now() + backoff(r.attempts)
        self.save()
        return None if terminal else r.retry_at

    def _settled(self, r: ModelRecord, state: str) -> None:
        r.state, r.done_key = state, r.desired_key
        r.reason = r.message = ""
        r.activating = r.activating_from = r.activating_previous = None
        self.save()

    def _download(self, m: p.DesiredModel, r: ModelRecord, d: ModelDir, target: str) -> Optional[float]:
        d.ensure()
        part = d.part(target)
        url = m.url if "://" in m.url else self.config.gateway + m.url
        before = os.path.getsize(part) if os.path.exists(part) else 0
        r.state = p.DOWNLOADING

        def progress(n: int) -> None:
            r.bytes_downloaded = n

        try:
            fetch(self.transport, url, self.blob_headers(url), part, m.size, self.config.request_timeout,
                  self.config.chunk_size, progress, self.config.step_bytes)  # fmt: skip
        except DownloadError as e:
            return self._fail(r, e.reason, str(e), terminal=e.reason in p.TERMINAL)
        except TransportError as e:
            r.bytes_downloaded = os.path.getsize(part) if os.path.exists(part) else 0
            r.message = str(e)
            if r.bytes_downloaded > before:  # the link works, it just dropped: resume at once
                self.save()
                return self.now()
            r.attempts += 1
            r.retry_at = self.now() + backoff(r.attempts)
            self.save()
            return r.retry_at
        r.bytes_downloaded = m.size
        got = fsutil.sha256_file(part)
        if got != target:
            fsutil.remove(part)
            return self._fail(r, p.DIGEST_MISMATCH, f"downloaded blob hashes to {got}, refused", terminal=False)
        try:
            info = bmodel.read_info(part)
        except bmodel.BModelError as e:
            fsutil.remove(part)
            return self._fail(r, p.INVALID_BMODEL, str(e), terminal=True)
        if not bmodel.chip_compatible(info.chip, self.config.chip):
            fsutil.remove(part)
            msg = f"bmodel header says {info.chip}, device is {self.config.chip}"
            return self._fail(r, p.CHIP_MISMATCH, msg, terminal=True)
        d.commit_part(target)
        r.attempts, r.retry_at, r.staged_digest = 0, 0.0, target
        r.state, r.reason, r.message = p.STAGED, "", ""
        self.save()
        return None

    def _activate(self, r: ModelRecord, d: ModelDir, target: str) -> Optional[float]:
        if fsutil.sha256_file(d.slot(target)) != target:  # changed on disk while it waited
            fsutil.remove(d.slot(target))
            r.staged_digest = None
            return self._fail(r, p.DIGEST_MISMATCH, "staged file no longer matches its digest", terminal=False)
        r.activating, r.activating_from, r.activating_previous = target, d.active(), d.previous()
        self.save()  # recovery needs to know what was in flight before the first link moves
        d.activate(target)
        r.active_digest, r.previous_digest = d.active(), d.previous()
        self.settle(r, d)
        return None

    def settle(self, r: ModelRecord, d: ModelDir) -> None:
        """Probe the model just swapped in; keep it, or put both links back as they were."""
        target = r.activating
        assert target is not None
        try:
            self.probe(d.slot(target), self.config.chip)
        except ProbeError as e:
            d.restore(r.activating_from, r.activating_previous)
            r.active_digest, r.previous_digest = d.active(), d.previous()
            r.activating = r.activating_from = r.activating_previous = None
            r.staged_digest = None
            self._fail(r, p.PROBE_FAILED, str(e), terminal=True)
            d.gc([])
            return
        rollback = r.desired_key.startswith(p.ROLLBACK + "/")
        self._settled(r, p.ROLLED_BACK if rollback else p.ACTIVE)
        r.staged_digest = None
        d.gc([])
        self.log.info("model %s active", target)

    def recover(self, name: str, r: ModelRecord) -> None:
        """After a restart: finish or undo an interrupted swap, re-verify what is active, tidy up."""
        d = self.dir(name)
        d.clean_temps([r.desired_digest])
        cur = d.active()
        if r.activating:
            if cur == r.activating and d.has_slot(cur):
                self.settle(r, d)  # the swap happened; the probe may not have: probe again
            else:
                if cur == r.activating_from:
                    d.restore(cur, r.activating_previous)
                r.activating = r.activating_from = r.activating_previous = None
                self.save()
            cur = d.active()
        if cur is not None and (not d.has_slot(cur) or fsutil.sha256_file(d.slot(cur)) != cur):
            prev = d.previous()
            ok = prev and prev != cur and d.has_slot(prev) and fsutil.sha256_file(d.slot(prev)) == prev
            good = prev if ok else None
            d.restore(good, None)
            fsutil.remove(d.slot(cur))
            r.state, r.reason, r.done_key = p.FAILED, p.VERIFY_FAILED, ""
            r.message = f"active model {cur} failed its sha256 check; now {good or 'none'}"
            self.log.error("model %s: %s", name, r.message)
        r.active_digest, r.previous_digest = d.active(), d.previous()
        target = r.desired_digest
        r.staged_digest = target if target and target != r.active_digest and d.has_slot(target) else None
        if not r.state and r.active_digest:
            r.state = p.ACTIVE
        d.gc([r.staged_digest])
        self.save()
