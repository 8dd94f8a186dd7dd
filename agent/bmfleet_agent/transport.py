"""Outbound HTTP(S) to the gateway, on http.client only, behind a small interface tests can replace.

Redirects are followed here rather than by urllib because a blob redirect usually points at another origin
(an object store with a presigned URL): the device's bearer token must not travel there.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any, Dict, Mapping, Optional, Protocol
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class TransportError(Exception):
    """The request did not get an HTTP answer (no route, refused, reset, timeout, TLS): the link is down."""


class Response:
    """An HTTP answer whose body is read on demand (blobs are streamed to disk, never held whole)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: Any, url: str) -> None:
        self.status = status
        self.headers: Dict[str, str] = {k.lower(): v for k, v in headers.items()}
        self.url = url
        self._body = body  # anything with read(n) and close()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._body.read(n) if n >= 0 else self._body.read()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"reading the body of {self.url}: {e}") from e
        return bytes(data)

    def json(self) -> Any:
        raw = self.read()
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except ValueError as e:
            raise TransportError(f"{self.url}: answer is not JSON: {raw[:200]!r}") from e

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport(Protocol):
    """What the agent needs from HTTP. Non-2xx answers are returned; only a missing answer raises."""

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Optional[bytes] = None,
        timeout: float = 60.0,
    ) -> Response: ...


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class _Body:
    """Closes the connection together with the response."""

    def __init__(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        self.resp = resp
        self.conn = conn

    def read(self, n: int = -1) -> bytes:
        return self.resp.read(n) if n >= 0 else self.resp.read()

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


class HttpTransport:
    """One connection per request: long polls and flaky links make pooled connections stale anyway."""

    def __init__(self, ca_bundle: Optional[str] = None, user_agent: str = "bmfleet-agent") -> None:
        self.ca_bundle = ca_bundle
        self.user_agent = user_agent
        self._ssl: Optional[ssl.SSLContext] = None

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Built on first use: loading the trust store costs ~25 ms, noticeable with hundreds of agents."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_bundle)
        return self._ssl

    def _open(self, url: str, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout, context=self.ssl_context
            )
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        raise TransportError(f"unsupported URL scheme in {url!r}")

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Optional[bytes] = None,
        timeout: float = 60.0,
    ) -> Response:
        hdrs = dict(headers)
        hdrs.setdefault("User-Agent", self.user_agent)
        first = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            conn = self._open(url, timeout)
            parts = urlsplit(url)
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (OSError, socket.timeout, http.client.HTTPException, ssl.SSLError) as e:
                conn.close()
                raise TransportError(f"{method} {url}: {e}") from e
            location = resp.getheader("Location")
            if resp.status in REDIRECTS and location and method in ("GET", "HEAD"):
                resp.close()
                conn.close()
                url = urljoin(url, location)
                if _origin(url) != first:
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                continue
            return Response(resp.status, dict(resp.getheaders()), _Body(resp, conn), url)
        raise TransportError(f"{method}: more than {MAX_REDIRECTS} redirects, last {url}")
