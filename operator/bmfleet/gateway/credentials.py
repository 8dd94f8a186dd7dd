"""Registration and rotation: device credentials are random tokens of which only the sha256 is ever stored.

These calls block (API round trips) and run in worker threads. Credential writes carry a resourceVersion
precondition and are retried on conflict, so two gateway replicas never lose each other's credentials, and the
status batcher's merge patches (which never name `credentials`) never touch them.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from bmfleet.gateway.kube import Kube
from bmfleet.gateway.view import Credential, credentials_of, format_time, parse_time, token_hash

DEVICE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
CHIP = re.compile(r"^[A-Z0-9]{2,16}$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
RESERVED = ("kubernetes.io", "k8s.io", "bmfleet.io")  # devices do not get to set these
MAX_CREDENTIALS = 8
ATTEMPTS = 5


class RefusedError(Exception):
    """Answer the device with `status` (400 bad input, 401 bad token, 409 policy) and this message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


def check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or len(labels) > 32:
        raise RefusedError(400, "BadRequest", "labels must be an object with at most 32 entries")
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
        ok = LABEL_NAME.match(name) and (not prefix or LABEL_PREFIX.match(prefix))
        if not ok or not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise RefusedError(400, "BadRequest", f"invalid label {str(key)[:80]!r}")
        if any(prefix == r or prefix.endswith("." + r) for r in RESERVED):
            raise RefusedError(400, "BadRequest", f"label prefix {prefix!r} is reserved")
    return dict(labels)


def issue(now: float, not_after: float | None = None) -> tuple[str, Credential]:
    """A new token (32 random bytes, URL-safe) and the record of it that status keeps."""
    token = secrets.token_urlsafe(32)
    cred = Credential(secrets.token_hex(6), token_hash(token), format_time(now), None)
    return token, cred


def _creds(obj: dict[str, Any]) -> list[Credential]:
    return list(credentials_of(obj.get("status") or {}))


def _revoked(obj: dict[str, Any]) -> set[str]:
    return {str(r) for r in (obj.get("spec") or {}).get("revokedCredentials") or []}


class BootstrapToken:
    """The shared registration token from a Secret, re-read at most every `ttl` s (sooner after a mismatch, so a
    rotated Secret takes effect quickly) and compared in constant time."""

    def __init__(self, kube: Kube, secret: str, key: str = "token", ttl: float = 30.0) -> None:
        self.kube, self.secret, self.key, self.ttl = kube, secret, key, ttl
        self._value = b""
        self._read_at = -1e9
        self._lock = threading.Lock()

    def _refresh(self, min_age: float) -> None:
        with self._lock:
            if time.monotonic() - self._read_at >= min_age:
                self._value = self.kube.read_secret(self.secret).get(self.key, b"").strip()
                self._read_at = time.monotonic()

    def check(self, token: str) -> bool:
        self._refresh(self.ttl)
        if self._value and hmac.compare_digest(self._value, token.encode()):
            return True
        self._refresh(5.0)
        return bool(self._value) and hmac.compare_digest(self._value, token.encode())


class Registrar:
    def __init__(self, kube: Kube, grace: float = 7 * 86400.0, clock: Callable[[], float] = time.time) -> None:
        self.kube, self.grace, self.clock = kube, grace, clock

    def register(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        """(device id, token, the EdgeDevice as written). Creates the EdgeDevice if it does not exist."""
        if not isinstance(body, dict):
            raise RefusedError(400, "BadRequest", "register needs a JSON object")
        asked = body.get("deviceId") or ""
        chip = body.get("chip")
        if not isinstance(asked, str) or (asked and not DEVICE_ID.match(asked)):
            raise RefusedError(400, "BadRequest", "deviceId must be a lower-case DNS label")
        if not isinstance(chip, str) or not CHIP.match(chip):
            raise RefusedError(400, "BadRequest", "chip is required (e.g. BM1684)")
        labels = check_labels(body.get("labels"))
        info = {k: body[k][:64] for k in ("agentVersion", "sdkVersion") if isinstance(body.get(k), str)}
        for _ in range(ATTEMPTS):
            name = asked or "dev-" + secrets.token_hex(5)
            try:  # create first: at fleet bring-up nearly every device is new (one call saved per device)
                obj: dict[str, Any] | None = self.kube.create_device(name, chip, labels)
            except client.ApiException as e:
                if e.status == 422:
                    raise RefusedError(400, "BadRequest", f"EdgeDevice refused: {_api_message(e)}") from e
                if e.status != 409:
                    raise
                if not asked:
                    continue  # a gateway-chosen id must be new: never hand out an existing device
                obj = self.kube.get_device(name)
            if obj is None:
                continue
            if _revoked(obj) & {c.id for c in _creds(obj)}:
                raise RefusedError(409, "Revoked", "this device's credential was revoked; an admin must clear it")
            now = self.clock()
            token, cred = issue(now)
            stamp = format_time(now)
            status: dict[str, Any] = {"credentials": [cred.to_status()], "chip": chip, "lastSeen": stamp, **info}
            if not (obj.get("status") or {}).get("registeredAt"):
                status["registeredAt"] = stamp
            status["conditions"] = _registered_conditions(obj, stamp)
            try:
                return name, token, self.kube.patch_status(name, status, rv=obj["metadata"]["resourceVersion"])
            except client.ApiException as e:
                if e.status not in (404, 409):
                    raise
        raise RefusedError(503, "Unavailable", "the device changed under registration; try again")

    def rotate(self, name: str, used: str) -> tuple[str, str, dict[str, Any]]:
        """(token, previousTokenValidUntil, the EdgeDevice as written). Credentials not yet graced get the grace
        period; expired ones are dropped; revoked ones stay listed (they are what blocks re-registration)."""
        for _ in range(ATTEMPTS):
            obj = self.kube.get_device(name)
            if obj is None:
                raise RefusedError(401, "Unauthorized", "unknown device")
            revoked, now = _revoked(obj), self.clock()
            current = _creds(obj)
            if used in revoked or used not in {c.id for c in current}:
                raise RefusedError(401, "Unauthorized", "credential revoked or unknown")
            until = format_time(now + self.grace)
            kept = []
            for c in current:
                expires = parse_time(c.not_after)
                if expires is not None and expires <= now and c.id not in revoked:
                    continue
                kept.append(c if c.not_after or c.id in revoked else Credential(c.id, c.sha256, c.issued_at, until))
            token, cred = issue(now)
            kept = [*kept[-(MAX_CREDENTIALS - 1) :], cred]
            status = {"credentials": [c.to_status() for c in kept]}
            try:
                written = self.kube.patch_status(name, status, rv=obj["metadata"]["resourceVersion"])
            except client.ApiException as e:
                if e.status == 409:
                    continue
                raise
            return token, until, written
        raise RefusedError(503, "Unavailable", "the device changed under rotation; try again")


def _registered_conditions(obj: dict[str, Any], stamp: str) -> list[dict[str, Any]]:
    """Registering is contact: Online now (saves a write per device right after), Ready as it was or not yet."""
    old = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
    online = old.get("Online") if (old.get("Online") or {}).get("status") == "True" else None
    ready = old.get("Ready") or {"type": "Ready", "status": "False", "reason": "NotReported",
                                 "message": "the device has not reported yet", "lastTransitionTime": stamp}  # fmt: skip
    return [ready, online or {"type": "Online", "status": "True", "reason": "Heartbeat",
                              "message": f"last contact {stamp}", "lastTransitionTime": stamp}]  # fmt: skip


def _api_message(e: client.ApiException) -> str:
    import json

    try:
        return str(json.loads(e.body or "{}").get("message", ""))[:300]
    except ValueError:
        return str(e.reason)[:300]
