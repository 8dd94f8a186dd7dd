"""The wire format of docs/gateway-protocol.md: parsing desired state, states and reasons, timestamps.

The gateway is trusted for *what* to run but not for well-formed input: names become directory names and
digests become file names, so both are checked before they touch the disk.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Any, Dict, List, NamedTuple, Optional

API = "/v1"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|z|[+-]\d{2}:\d{2})$",
)

# Model states reported in status.models[].state.
DOWNLOADING, STAGED, ACTIVE, FAILED, ROLLED_BACK = "Downloading", "Staged", "Active", "Failed", "RolledBack"
# Reasons reported with Failed (and with RolledBack/Active where they explain a transition).
DIGEST_MISMATCH = "DigestMismatch"
SIZE_MISMATCH = "SizeMismatch"
CHIP_MISMATCH = "ChipMismatch"
INVALID_BMODEL = "InvalidBModel"
PROBE_FAILED = "ProbeFailed"
DOWNLOAD_FAILED = "DownloadFailed"
NO_PREVIOUS = "NoPrevious"
INVALID_SPEC = "InvalidSpec"
VERIFY_FAILED = "ActiveVerifyFailed"
# Reasons that will not go away by retrying the same digest: wait for a new desired state.
TERMINAL = frozenset({CHIP_MISMATCH, INVALID_BMODEL, PROBE_FAILED, NO_PREVIOUS, INVALID_SPEC, SIZE_MISMATCH})

INSTALL, ROLLBACK = "install", "rollback"


class ProtocolError(Exception):
    """The gateway sent something this agent cannot act on."""


class DesiredModel(NamedTuple):
    name: str
    action: str  # install | rollback
    digest: Optional[str]  # required for install; for rollback, the previous digest it must be (optional)
    size: int
    chip: str
    url: str
    activate_at: Optional[float]  # epoch seconds
    rollout_id: str
    generation: int

    @property
    def key(self) -> str:
        """What changes when the gateway asks for something new (a failed attempt is not retried for the same key)."""
        return f"{self.action}/{self.digest or '-'}/{self.rollout_id}/{self.generation}"


def parse_time(text: str) -> float:
    """RFC 3339 to epoch seconds (datetime.fromisoformat on 3.8 takes neither 'Z' nor arbitrary fractions)."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ProtocolError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    tz = m.group(8)
    offset = 0 if tz in ("Z", "z") else (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac - offset


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _str(item: Dict[str, Any], key: str, default: Optional[str] = None) -> str:
    v = item.get(key, default)
    if not isinstance(v, str):
        raise ProtocolError(f"model field {key!r} must be a string, got {v!r}")
    return v


def _int(item: Dict[str, Any], key: str, default: int = 0) -> int:
    v = item.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProtocolError(f"model field {key!r} must be a non-negative integer, got {v!r}")
    return int(v)


def parse_model(item: Any) -> DesiredModel:
    if not isinstance(item, dict):
        raise ProtocolError(f"a desired model must be an object, got {item!r}")
    name = _str(item, "name")
    if not NAME_RE.match(name):
        raise ProtocolError(f"model name {name!r} is not a lower-case DNS label")
    action = _str(item, "action", INSTALL)
    if action not in (INSTALL, ROLLBACK):
        raise ProtocolError(f"model {name}: unknown action {action!r}")
    digest = item.get("digest")
    if digest is not None and (not isinstance(digest, str) or not DIGEST_RE.match(digest)):
        raise ProtocolError(f"model {name}: digest {digest!r} is not sha256:<64 hex>")
    if action == INSTALL and (digest is None or not _int(item, "size")):
        raise ProtocolError(f"model {name}: install needs a digest and a size > 0")
    at = item.get("activateAt")
    return DesiredModel(
        name=name,
        action=action,
        digest=digest,
        size=_int(item, "size") if action == INSTALL else 0,
        chip=_str(item, "chip", ""),
        url=_str(item, "url", f"{API}/blobs/{digest}" if digest else ""),
        activate_at=parse_time(at) if isinstance(at, str) and at else None,
        rollout_id=_str(item, "rolloutId", ""),
        generation=_int(item, "generation"),
    )


class Desired(NamedTuple):
    version: int
    models: List[DesiredModel]
    errors: Dict[str, str]  # model name (or "#i") -> why it was refused


def parse_desired(doc: Any) -> Desired:
    """Parse a desired-state document; one bad entry is refused on its own, the others still apply."""
    if not isinstance(doc, dict) or not isinstance(doc.get("models", []), list):
        raise ProtocolError(f"desired state must be an object with a models list, got {doc!r:.200}")
    version = doc.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError(f"desired version must be an integer, got {version!r}")
    models: List[DesiredModel] = []
    errors: Dict[str, str] = {}
    seen = set()
    for i, item in enumerate(doc.get("models", [])):
        try:
            m = parse_model(item)
        except ProtocolError as e:
            key = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"#{i}"
            errors[str(key)] = str(e)
            continue
        if m.name in seen:
            errors[m.name] = f"model {m.name} is listed twice"
            continue
        seen.add(m.name)
        models.append(m)
    return Desired(version, models, errors)
