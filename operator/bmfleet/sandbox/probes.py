"""Health probes for the components, over loopback and never through an environment proxy."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

PROBE_TIMEOUT = 2.0

# An explicit empty ProxyHandler: HTTP(S)_PROXY from the environment must not capture loopback traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Verify against the sandbox CA, optionally presenting a client cert."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def get(url: str, context: ssl.SSLContext | None = None, timeout: float = PROBE_TIMEOUT) -> bytes | None:
    """Body of a 200 response, or None on any error (the component is simply not ready yet)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers) if context is not None else _opener
    try:
        with opener.open(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def etcd_healthy(port: int) -> bool:
    body = get(f"http://127.0.0.1:{port}/health")
    if body is None:
        return False
    try:
        return bool(json.loads(body).get("health") == "true")
    except ValueError:
        return False


def ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    return get(url, context) is not None
