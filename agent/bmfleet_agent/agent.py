"""The agent loop: register, long-poll desired state, reconcile every model, report status, rotate credentials.

Everything that waits or talks is injected (clock, transport, probe), and one :meth:`Agent.step` is one
bounded iteration, so a test can drive an agent step by step and a benchmark can run hundreds in threads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from typing import Any, Dict, List, Optional, Protocol

from bmfleet_agent import __version__, credentials, fsutil, state
from bmfleet_agent import protocol as p
from bmfleet_agent.config import Config, detect_sdk_version
from bmfleet_agent.probe import Probe, default_probe
from bmfleet_agent.reconcile import Reconciler, backoff
from bmfleet_agent.store import model_names
from bmfleet_agent.transport import HttpTransport, Response, Transport, TransportError


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class GatewayError(TransportError):
    """The gateway answered with an error status; treated like a down link (retry with backoff)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(GatewayError):
    """The gateway refused the credential (401/403) or does not know this device (404)."""


class Agent:
    def __init__(
        self,
        config: Config,
        transport: Optional[Transport] = None,
        clock: Optional[Clock] = None,
        probe: Optional[Probe] = None,
        log: Optional[logging.Logger] = None,
    ) -> None:
        self.config = config
        self.transport = transport or HttpTransport(config.ca_bundle, f"bmfleet-agent/{__version__}")
        self.clock = clock or SystemClock()
        self.log = log or logging.getLogger("bmfleet_agent")
        self.state_path = os.path.join(config.state_dir, "state.json")
        self.state = state.AgentState()
        self.credential: Optional[credentials.Credential] = None
        self.sdk_version = config.sdk_version or detect_sdk_version()
        self.online = False
        self.failures = 0  # consecutive steps without the gateway
        self.recovered = False
        self.rotate_requested = False
        self.rejected_token = ""
        self.retry_after = 0.0
        self.last_error = ""
        self.busy = False
        self._saved = b""
        self._last_report: Optional[Dict[str, Any]] = None
        self._last_report_at = 0.0
        self.reconciler = Reconciler(
            config, self.transport, self.clock.now, probe or default_probe(config.probe_command),
            self._blob_headers, self.save, self.log,
        )  # fmt: skip

    # -- persistence ------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the state file if it changed (each write is an fsync; on eMMC those are not free)."""
        data = json.dumps(self.state.to_json(), sort_keys=True).encode()
        if data != self._saved:
            state.save(self.state_path, self.state)
            self._saved = data

    def recover(self) -> None:
        """Run once at start: temp files, interrupted swaps, re-verify every active model."""
        fsutil.makedirs(self.config.state_dir, 0o700)
        fsutil.remove(self.state_path + fsutil.TMP_SUFFIX)
        fsutil.remove(credentials.path(self.config.state_dir) + fsutil.TMP_SUFFIX)
        self.state = state.load(self.state_path)
        self._saved = json.dumps(self.state.to_json(), sort_keys=True).encode()
        for name in sorted(set(model_names(self.config.models_dir)) | set(self.state.models)):
            if p.NAME_RE.match(name):
                self.reconciler.recover(name, self.state.record(name))
        self.credential = credentials.load(self.config.state_dir)
        self.recovered = True

    # -- gateway calls ----------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self.config.gateway + p.API + path

    def _auth(self) -> Dict[str, str]:
        return {"Authorization": "Bearer " + self.credential.token} if self.credential else {}

    def _blob_headers(self, url: str) -> Dict[str, str]:
        same = url.startswith(self.config.gateway + "/")
        return self._auth() if same else {}

    def _call(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Response:
        headers = self._auth()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        resp = self.transport.request(method, self._url(path), headers, data, timeout or self.config.request_timeout)
        if resp.status in (401, 403, 404):
            msg = resp.read(300).decode("utf-8", "replace")
            resp.close()
            raise AuthError(f"{method} {path}: HTTP {resp.status} {msg}")
        if resp.status >= 400:
            msg = resp.read(300).decode("utf-8", "replace")
            resp.close()
            after = resp.headers.get("retry-after", "")
            raise GatewayError(f"{method} {path}: HTTP {resp.status} {msg}", float(after) if after.isdigit() else 0)
        return resp

    def register(self) -> credentials.Credential:
        if not self.config.bootstrap_token:
            raise AuthError("no device credential and no bootstrap token to register with")
        body = {"deviceId": self.config.device_id, "chip": self.config.chip, "agentVersion": __version__,
                "sdkVersion": self.sdk_version, "labels": self.config.labels}  # fmt: skip
        headers = {"Authorization": "Bearer " + self.config.bootstrap_token, "Content-Type": "application/json"}
        resp = self.transport.request("POST", self._url("/register"), headers, json.dumps(body).encode(),
                                      self.config.request_timeout)  # fmt: skip
        with resp:
            if resp.status not in (200, 201):
                raise AuthError(f"register: HTTP {resp.status} {resp.read(300).decode('utf-8', 'replace')}")
            doc = resp.json()
        cred = credentials.Credential(str(doc["deviceId"]), str(doc["token"]), self.clock.now())
        credentials.save(self.config.state_dir, cred)
        self.credential = cred
        self.log.info("registered as %s", cred.device_id)
        return cred

    def rotate(self) -> None:
        """New token first on disk, then in use; the old one stays valid for the gateway's grace period."""
        assert self.credential is not None
        with self._call("POST", f"/devices/{self.credential.device_id}/rotate", {}) as resp:
            doc = resp.json()
        cred = credentials.Credential(self.credential.device_id, str(doc["token"]), self.clock.now())
        credentials.save(self.config.state_dir, cred)
        self.credential = cred
        self.rotate_requested = False
        self.log.info("credential rotated")

    def poll(self, wait: int) -> bool:
        """Long-poll desired state. Returns whether it changed."""
        assert self.credential is not None
        path = f"/devices/{self.credential.device_id}/desired?wait={wait}&version={self.state.desired_version}"
        with self._call("GET", path, timeout=wait + self.config.request_timeout) as resp:
            if resp.status in (204, 304):
                return False
            doc = resp.json()
        p.parse_desired(doc)  # refuse a malformed document as a whole before it replaces the stored one
        if doc == self.state.desired:
            return False
        self.state.desired, self.state.desired_version = doc, int(doc.get("version", 0))
        self.save()
        return True

    def status(self) -> Dict[str, Any]:
        desired = p.parse_desired(self.state.desired) if self.state.desired else p.Desired(0, [], {})
        models: List[Dict[str, Any]] = []
        for name, r in sorted(self.state.models.items()):
            models.append({
                "name": name, "state": r.state, "reason": r.reason, "message": r.message,
                "desiredDigest": r.desired_digest, "stagedDigest": r.staged_digest,
                "activeDigest": r.active_digest, "previousDigest": r.previous_digest,
                "bytesDownloaded": r.bytes_downloaded, "size": r.size,
                "rolloutId": r.rollout_id, "generation": r.generation,
            })  # fmt: skip
        for name, why in sorted(desired.errors.items()):
            models.append({"name": name, "state": p.FAILED, "reason": p.INVALID_SPEC, "message": why})
        return {
            "chip": self.config.chip, "sdkVersion": self.sdk_version, "agentVersion": __version__,
            "desiredVersion": self.state.desired_version, "models": models, "lastError": self.last_error,
        }  # fmt: skip

    def report(self, force: bool = False) -> None:
        assert self.credential is not None
        body = self.status()
        now = self.clock.now()
        if not force and body == self._last_report and now - self._last_report_at < self.config.heartbeat:
            return
        path = f"/devices/{self.credential.device_id}/status"
        with self._call("POST", path, dict(body, time=p.format_time(now))) as resp:
            doc = resp.json() if resp.status == 200 else None
        self._last_report, self._last_report_at = body, now
        if isinstance(doc, dict) and doc.get("rotateCredential"):
            self.rotate_requested = True

    # -- the loop -------------------------------------------------------------------------------------------
    def reconcile(self, online: bool) -> Optional[float]:
        """Every desired model, also offline (staged models still activate on time). Returns the next wake."""
        desired = p.parse_desired(self.state.desired) if self.state.desired else p.Desired(0, [], {})
        wakes = []
        for m in desired.models:
            wake = self.reconciler.reconcile(m, self.state.record(m.name), online)
            if wake is not None:
                wakes.append(wake)
        self.save()
        return min(wakes) if wakes else None

    def step(self, poll_wait: Optional[int] = None) -> float:
        """One iteration. Returns how long to wait before the next; `busy` says there is more to do now."""
        if not self.recovered:
            self.recover()
        now = self.clock.now()
        self.reconciler.want_network = False
        wake = self.reconcile(online=False)  # due activations first: they need no network
        self.busy = self.reconciler.want_network or (wake is not None and wake <= now)
        limit = self.config.poll_wait if poll_wait is None else poll_wait
        until = 0.0 if self.busy else limit if wake is None else max(0.0, min(limit, wake - now))
        try:
            if self.credential is None:
                cred = credentials.load(self.config.state_dir)
                self.credential = cred if cred and cred.token != self.rejected_token else self.register()
            self.poll(math.ceil(until))
            wake = self.reconcile(online=True)
            self.report()
            if self.rotate_requested or now - self.credential.issued_at > self.config.rotate_after:
                self.rotate()
            self.online, self.failures, self.last_error = True, 0, ""
        except TransportError as e:
            self.online, self.failures, self.last_error = False, self.failures + 1, str(e)
            self.retry_after = e.retry_after if isinstance(e, GatewayError) else 0.0
            self.log.warning("gateway: %s", e)
            if isinstance(e, AuthError) and self.credential is not None and self.config.bootstrap_token:
                # Revoked or unknown: register again. The file keeps the old token until that succeeds.
                self.rejected_token, self.credential = self.credential.token, None
        except p.ProtocolError as e:
            # Keep the last good desired state; tell the gateway why, and do not re-poll it in a tight loop.
            self.online, self.failures, self.last_error = True, self.failures + 1, f"unusable desired state: {e}"
            self.log.error("%s", self.last_error)
            try:
                self.report(force=True)
            except TransportError:
                self.online = False
        now = self.clock.now()
        self.busy = self.online and wake is not None and wake <= now
        if self.busy:
            return 0.0
        if self.failures:  # jitter: a fleet that lost the gateway together must not come back together
            pause = max(self.retry_after, backoff(self.failures) * random.uniform(0.5, 1.0))  # noqa: S311
            return max(0.0, min(pause, wake - now)) if wake is not None else pause
        if limit:
            return 0.0  # the long poll paces the loop
        return max(0.0, min(self.config.heartbeat, wake - now)) if wake is not None else self.config.heartbeat

    def run_once(self, max_steps: int = 1000) -> bool:
        """Do what can be done now without long-polling (cron, tests). True if the gateway was reachable."""
        for _ in range(max_steps):
            self.step(poll_wait=0)
            if not self.busy:
                break
        return self.online

    def run(self, stop: Optional[threading.Event] = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                pause = self.step()
            except OSError as e:  # disk full, read-only remount...: keep serving, try again later
                self.failures += 1
                self.last_error = f"local error: {e}"
                self.log.exception("step failed")
                pause = backoff(self.failures)
            if pause > 0:
                stop.wait(pause)
