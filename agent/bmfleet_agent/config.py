"""Agent configuration from a JSON file, then ``BMFLEET_*`` environment variables, then flags (last wins).

The file suits provisioning images; the environment suits systemd units; flags suit a person at a shell.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Mapping, Optional

from bmfleet_agent import bmodel


class ConfigError(Exception):
    """Configuration is missing or invalid; the message names the setting."""


@dataclasses.dataclass
class Config:
    gateway: str = ""  # https://gateway.example:8443
    state_dir: str = "/var/lib/bmfleet-agent"
    chip: str = ""  # BM1684, BM1684X, ...
    bootstrap_token: str = ""
    device_id: str = ""  # the id asked for at registration; the gateway's answer is what counts
    ca_bundle: Optional[str] = None  # PEM bundle to verify the gateway; default: the system's
    poll_wait: int = 30  # long-poll seconds
    heartbeat: float = 60.0  # status at least this often, also when nothing changed
    request_timeout: float = 30.0
    probe_command: str = ""
    sdk_version: str = ""  # default: read from /opt/sophon/libsophon-current
    labels: Dict[str, str] = dataclasses.field(default_factory=dict)
    rotate_after: float = 30 * 86400.0  # rotate the credential when it is older than this
    chunk_size: int = 256 << 10
    step_bytes: int = 32 << 20  # download at most this much per step, so status shows progress on big blobs

    @property
    def models_dir(self) -> str:
        return os.path.join(self.state_dir, "models")

    def validate(self) -> Config:
        if not self.gateway.startswith(("https://", "http://")):
            raise ConfigError(f"gateway must be an http(s) URL, got {self.gateway!r}")
        if not self.chip:
            raise ConfigError("chip is required (e.g. BM1684): models for another chip are refused")
        self.chip = self.chip.strip().upper()
        if self.chip not in bmodel.KNOWN_CHIPS:
            raise ConfigError(f"unknown chip {self.chip!r}; known: {', '.join(sorted(bmodel.KNOWN_CHIPS))}")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigError(f"ca bundle {self.ca_bundle} does not exist")
        if self.poll_wait < 0 or self.heartbeat <= 0 or self.chunk_size <= 0:
            raise ConfigError("poll wait, heartbeat and chunk size must be positive")
        self.gateway = self.gateway.rstrip("/")
        return self


# Setting -> (JSON file key, environment variable). Flags use the attribute names with dashes.
KEYS = {
    "gateway": ("gateway", "BMFLEET_GATEWAY"),
    "state_dir": ("stateDir", "BMFLEET_STATE_DIR"),
    "chip": ("chip", "BMFLEET_CHIP"),
    "bootstrap_token": ("bootstrapToken", "BMFLEET_BOOTSTRAP_TOKEN"),
    "device_id": ("deviceId", "BMFLEET_DEVICE_ID"),
    "ca_bundle": ("caBundle", "BMFLEET_CA_BUNDLE"),
    "poll_wait": ("pollWait", "BMFLEET_POLL_WAIT"),
    "heartbeat": ("heartbeatSeconds", "BMFLEET_HEARTBEAT"),
    "request_timeout": ("requestTimeout", "BMFLEET_REQUEST_TIMEOUT"),
    "probe_command": ("probeCommand", "BMFLEET_PROBE_COMMAND"),
    "sdk_version": ("sdkVersion", "BMFLEET_SDK_VERSION"),
    "labels": ("labels", "BMFLEET_LABELS"),
    "rotate_after": ("rotateAfterSeconds", "BMFLEET_ROTATE_AFTER"),
    "chunk_size": ("chunkSize", "BMFLEET_CHUNK_SIZE"),
    "step_bytes": ("stepBytes", "BMFLEET_STEP_BYTES"),
}
_TYPES = {f.name: f.type for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_TYPES[name])
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if name == "labels":
            if isinstance(value, str):  # env: a=b,c=d
                return dict(kv.split("=", 1) for kv in value.split(",") if kv.strip())
            if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                return dict(value)
            raise ValueError("labels must map strings to strings")
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from e
    return str(value) if value is not None else None


def load(
    file: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    flags: Optional[Mapping[str, Any]] = None,
) -> Config:
    """Merge the three sources; a token may also come from a file (``bootstrapTokenFile``), kept off argv."""
    env = os.environ if env is None else env
    values: Dict[str, Any] = {}
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise ConfigError(f"config file {file}: {e}") from e
        if not isinstance(doc, dict):
            raise ConfigError(f"config file {file}: must hold a JSON object")
        known = {key for key, _ in KEYS.values()} | {"bootstrapTokenFile"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ConfigError(f"config file {file}: unknown keys {unknown}")
        values.update({name: doc[key] for name, (key, _) in KEYS.items() if key in doc})
        if "bootstrapTokenFile" in doc:
            values["bootstrap_token_file"] = doc["bootstrapTokenFile"]
    values.update({name: env[var] for name, (_, var) in KEYS.items() if env.get(var)})
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    token_file = values.pop("bootstrap_token_file", None)
    if token_file and not values.get("bootstrap_token"):
        try:
            with open(token_file, encoding="utf-8") as f:
                values["bootstrap_token"] = f.read().strip()
        except OSError as e:
            raise ConfigError(f"bootstrap token file: {e}") from e
    return Config(**{k: _coerce(k, v) for k, v in values.items()}).validate()


def detect_sdk_version(root: str = "/opt/sophon") -> str:
    """libsophon installs as /opt/sophon/libsophon-<version> with a libsophon-current symlink."""
    target = os.path.realpath(os.path.join(root, "libsophon-current"))
    base = os.path.basename(target)
    return base[len("libsophon-") :] if base.startswith("libsophon-") and os.path.isdir(target) else "unknown"
