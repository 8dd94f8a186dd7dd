"""The gateway's picture of the EdgeDevices in its namespace, fed by one list+watch: requests never call the API.

It lives on the event-loop thread only (the watch thread hands events over with call_soon_threadsafe), so it needs
no locks. Per device it keeps what a request needs, precomputed: the desired document as the agent receives it,
the blobs that device may fetch, its credential hashes and revoked ids. A device never moves back to an older
resourceVersion, so the gateway's own writes (a new credential) are visible at once even if the watch is behind.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

GROUP, VERSION, PLURAL, KIND = "bmfleet.io", "v1alpha1", "edgedevices", "EdgeDevice"


def token_hash(token: str) -> str:
    """What status.credentials keeps: the hex sha256 of the token, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (as the gateway writes it) to epoch seconds; None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Credential:
    id: str
    sha256: str
    issued_at: str
    not_after: str | None = None

    @property
    def expires(self) -> float | None:
        return parse_time(self.not_after)

    def to_status(self) -> dict[str, str]:
        doc = {"id": self.id, "sha256": self.sha256, "issuedAt": self.issued_at}
        return doc | ({"notAfter": self.not_after} if self.not_after else {})


@dataclass(frozen=True)
class BlobRef:
    digest: str
    uri: str
    size: int


@dataclass
class Device:
    name: str
    rv: int
    generation: int = 0
    chip: str = ""
    version: int = 0  # spec.desired.version
    doc: bytes = b'{"version":0,"models":[]}'  # the desired document as the agent receives it
    targets: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # model -> (action, digest)
    blobs: dict[str, BlobRef] = field(default_factory=dict)  # digest -> where it is
    revoked: frozenset[str] = frozenset()
    credentials: tuple[Credential, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)


def credentials_of(status: dict[str, Any]) -> tuple[Credential, ...]:
    """status.credentials as records (malformed entries are skipped)."""
    return tuple(
        Credential(str(c["id"]), str(c["sha256"]), str(c.get("issuedAt", "")), c.get("notAfter"))
        for c in status.get("credentials") or []
        if isinstance(c, dict) and c.get("id") and c.get("sha256")
    )


def _rv(obj: dict[str, Any]) -> int:
    rv = str(obj.get("metadata", {}).get("resourceVersion", "0"))
    return int(rv) if rv.isdigit() else 0


def parse_device(obj: dict[str, Any], namespace: str) -> Device:
    """An EdgeDevice object (contract form) to what requests need (protocol form)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = spec.get("desired") or {}
    version = int(desired["version"]) if isinstance(desired.get("version"), int) else 0
    models, targets, blobs = [], {}, {}
    for m in desired.get("models") or []:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            continue
        entry: dict[str, Any] = {"name": m["name"], "action": m.get("action") or "install"}
        for key in ("digest", "size", "chip", "activateAt", "generation"):
            if m.get(key) is not None:
                entry[key] = m[key]
        digest = m.get("digest")
        if isinstance(digest, str):
            entry["url"] = f"/v1/blobs/{digest}"
            if isinstance(m.get("uri"), str) and isinstance(m.get("size"), int):
                blobs[digest] = BlobRef(digest, m["uri"], m["size"])
        if m.get("rollout"):
            entry["rolloutId"] = f"{namespace}/{m['rollout']}"
        models.append(entry)
        targets[m["name"]] = (entry["action"], digest if isinstance(digest, str) else None)
    creds = credentials_of(status)
    return Device(
        name=str(meta.get("name")), rv=_rv(obj), generation=int(meta.get("generation") or 0),
        chip=str(spec.get("chip") or ""), version=version,
        doc=json.dumps({"version": version, "models": models}, separators=(",", ":")).encode(),
        targets=targets, blobs=blobs, revoked=frozenset(str(r) for r in spec.get("revokedCredentials") or []),
        credentials=creds, status=status,
    )  # fmt: skip


REVOKED = "revoked"


class View:
    """Devices by name, credential hashes → (device, credential id), and per-device waiters for long polls."""

    def __init__(self, namespace: str, clock: Callable[[], float] = time.time) -> None:
        self.namespace = namespace
        self.clock = clock
        self.devices: dict[str, Device] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.synced = False
        self.relists = 0
        self.on_change: list[Callable[[Device | None, Device | None], None]] = []

    # -- feeding ---------------------------------------------------------------------------------------------
    def replace(self, objects: Iterable[dict[str, Any]], list_rv: str) -> None:
        """A full list: everything in it, and nothing older than it that it does not name."""
        seen = set()
        for obj in objects:
            self.apply("MODIFIED", obj)
            seen.add(obj["metadata"]["name"])
        cutoff = int(list_rv) if list_rv.isdigit() else 0
        for name in [n for n, d in self.devices.items() if n not in seen and d.rv <= cutoff]:
            self._set(name, None)
        self.synced = True
        self.relists += 1

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) or one of the gateway's own writes."""
        name = obj.get("metadata", {}).get("name")
        if not isinstance(name, str):
            return
        old = self.devices.get(name)
        if old is not None and _rv(obj) and _rv(obj) < old.rv:
            return  # older than what we already have (our own write arrived first)
        self._set(name, None if kind == "DELETED" else parse_device(obj, self.namespace))

    def _set(self, name: str, new: Device | None) -> None:
        old = self.devices.pop(name, None)
        if old is not None:
            for c in old.credentials:
                if self.tokens.get(c.sha256, ("", ""))[0] == name:
                    del self.tokens[c.sha256]
        if new is not None:
            self.devices[name] = new
            for c in new.credentials:
                self.tokens[c.sha256] = (name, c.id)
        for cb in self.on_change:
            cb(old, new)
        self._wake(name)

    # -- requests --------------------------------------------------------------------------------------------
    def authenticate(self, token: str) -> tuple[Device, Credential] | str | None:
        """(device, credential) for a good token, REVOKED for a known but revoked or expired one, else None."""
        digest = token_hash(token)
        entry = self.tokens.get(digest)
        device = self.devices.get(entry[0]) if entry else None
        cred = next((c for c in device.credentials if c.id == entry[1]), None) if device and entry else None
        if device is None or cred is None or not hmac.compare_digest(cred.sha256, digest):
            return None
        expires = cred.expires
        if cred.id in device.revoked or (expires is not None and self.clock() >= expires):
            return REVOKED
        return device, cred

    async def wait(self, name: str, timeout: float) -> None:
        """Until this device changes in any way (desired state, credentials, deletion) or `timeout` passes."""
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        waiters = self.waiters.setdefault(name, set())
        waiters.add(fut)
        timer = loop.call_later(timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            waiters.discard(fut)
            if not waiters:
                self.waiters.pop(name, None)

    def _wake(self, name: str) -> None:
        for fut in self.waiters.get(name, ()):
            _resolve(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
