"""Settings of one gateway process (flags of `bmfleet gateway`, or set directly by tests and the bench)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bmfleet.pipeline.pods import STORE_DIR


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) to (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - a server listens on all interfaces by default


@dataclass
class GatewayConfig:
    namespace: str
    bootstrap_secret: str
    listen: tuple[str, int] = ("0.0.0.0", 8443)  # noqa: S104
    admin_listen: tuple[str, int] | None = ("0.0.0.0", 8081)  # noqa: S104 - /healthz /readyz /metrics, plain HTTP
    tls_cert: Path | None = None  # None: plain HTTP (tests and TLS-terminating ingresses only)
    tls_key: Path | None = None
    bootstrap_key: str = "token"
    store_uris: list[str] = field(default_factory=list)  # stores served from; empty: pvc:// claims only
    pvc_root: Path = Path(STORE_DIR)  # pvc://<claim>/<prefix> is <pvc_root>/<claim>/<prefix>
    cache_dir: Path = Path("/run/bmfleet/cache")  # blobs fetched from oci:// and s3:// stores
    store_credentials: Path | None = None
    store_ca_bundle: Path | None = None
    kubeconfig: Path | None = None  # None: in-cluster, else $KUBECONFIG
    max_poll_wait: int = 30
    rotation_grace: float = 7 * 86400.0
    heartbeat: float = 60.0  # the agents' heartbeat: Online=False after 3x without contact
    last_seen_interval: float = 120.0  # lastSeen is refreshed in status at most this often per device
    batch_interval: float = 1.0
    batch_max: int = 500
    write_concurrency: int = 8
    max_connections: int = 20000
