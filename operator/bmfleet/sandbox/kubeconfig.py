"""Kubeconfig files for the sandbox, and the loopback guard every cluster user calls first.

Credentials are embedded (``*-data``) so a kubeconfig stays valid when copied or read from another cwd.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CONTEXT = "bmfleet-sandbox"


class NotLoopbackError(RuntimeError):
    """The kubeconfig points somewhere other than this machine; refuse to touch that cluster."""


def write_cert_kubeconfig(path: Path, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> Path:
    """Write a kubeconfig authenticating with a client certificate."""
    user = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    return _write(path, server, ca_pem, "admin", user)


def write_token_kubeconfig(path: Path, server: str, ca_pem: bytes, token: str, user: str) -> Path:
    """Write a kubeconfig authenticating with a bearer token (e.g. from the TokenRequest API)."""
    return _write(path, server, ca_pem, user, {"token": token})


def current_server(kubeconfig: Path) -> str:
    """Return the server URL of the kubeconfig's current-context cluster."""
    doc = yaml.safe_load(kubeconfig.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{kubeconfig}: not a kubeconfig")
    current = doc.get("current-context")
    if not current:
        raise ValueError(f"{kubeconfig}: no current-context")
    context = _named(doc, "contexts", current, "context")
    cluster = _named(doc, "clusters", context.get("cluster"), "cluster")
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ValueError(f"{kubeconfig}: cluster of context {current!r} has no server")
    return server


def require_loopback(kubeconfig_path: Path | str) -> None:
    """Raise NotLoopbackError unless the current context talks to 127.0.0.0/8, ::1 or localhost.

    Tests and demos create and delete cluster objects freely; this guard keeps them off real clusters.
    """
    path = Path(kubeconfig_path)
    server = current_server(path)
    host = urlsplit(server).hostname
    if host is None or not _is_loopback(host):
        raise NotLoopbackError(
            f"refusing to use {path}: its current context points at {server!r}, which is not loopback "
            "(127.0.0.0/8, ::1 or localhost); bmfleet tests and demos only talk to the local sandbox"
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _named(doc: dict[str, Any], section: str, name: object, key: str) -> dict[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(key), dict):
            found: dict[str, Any] = item[key]
            return found
    raise ValueError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write(path: Path, server: str, ca_pem: bytes, user: str, credentials: dict[str, str]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    tmp.replace(path)
    return path
