"""The HTTP the remote stores share (stdlib `http.client`: no new dependency in the worker image).

One attempt follows redirects itself so that an `Authorization` header never travels to another host or scheme
(registries redirect blob GETs to object storage, which would reject or log it; content is checked by digest).
Retries are bounded with exponential backoff and only for what can heal: refused or dropped connections,
timeouts, 429 and 5xx. Errors name the method and the URL without its query string, never a header.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import random
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import urljoin, urlsplit

from bmfleet.store.base import DigestMismatchError, StoreError

T = TypeVar("T")
BLOCK = 1 << 20
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # refused, reset, timeout, IncompleteRead, BadStatusLine


class TransientError(StoreError):
    """Worth another attempt (the caller's retry loop decides how many)."""


@dataclass(frozen=True)
class FileSlice:
    """Part of a file as a request body: re-openable, so a retried request sends the same bytes again."""

    path: Path
    offset: int
    length: int


Body = bytes | FileSlice | None


def safe_url(url: str) -> str:
    """The URL as errors and logs may show it: no userinfo, no query (upload state, signatures)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def is_loopback(host: str) -> bool:
    """Plain http is allowed only to loopback: tests and port-forwards, never a real network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Response:
    """An open response; closing it closes its connection."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str) -> None:
        self._conn, self._resp, self.url = conn, resp, url
        self.status: int = resp.status
        self.headers: Message = resp.headers

    def read(self, n: int = -1) -> bytes:
        return self._resp.read(n)

    def close(self) -> None:
        self._conn.close()


class Transport:
    """Single requests with redirects, plus a bounded retry loop for callers to wrap whole operations in."""

    def __init__(
        self,
        *,
        ca_bundle: Path | None = None,
        timeout: float = 60.0,
        attempts: int = 6,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._ssl = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if not parts.hostname:
            raise StoreError(f"no host in {safe_url(url)}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout, context=self._ssl, blocksize=BLOCK
            ), target
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout, blocksize=BLOCK), target
        raise StoreError(f"unsupported scheme in {safe_url(url)}")

    def open(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None, *, redirects: int = 5
    ) -> Response:
        """One attempt. Raises TransientError for network errors and retryable statuses; returns the rest."""
        headers = dict(headers or {})
        for _ in range(redirects + 1):
            conn, target = self._connect(url)
            try:
                _send(conn, method, target, headers, body)
                resp = conn.getresponse()
            except ssl.SSLCertVerificationError as exc:  # will not heal by retrying: a wrong CA bundle or host
                conn.close()
                raise StoreError(f"{method} {safe_url(url)}: TLS verification failed ({exc.verify_message})") from None
            except _NETWORK_ERRORS as exc:
                conn.close()
                raise TransientError(f"{method} {safe_url(url)}: {type(exc).__name__}") from None
            location = resp.getheader("Location")
            if resp.status in (301, 302, 303, 307, 308) and location and redirects:
                conn.close()
                new_url = urljoin(url, location)
                old_parts, new_parts = urlsplit(url), urlsplit(new_url)
                if (new_parts.scheme, new_parts.netloc) != (old_parts.scheme, old_parts.netloc):
                    headers.pop("Authorization", None)
                if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                    method, body = "GET", None
                url = new_url
                continue
            response = Response(conn, resp, url)
            if resp.status in RETRY_STATUS:
                response.close()
                raise TransientError(f"{method} {safe_url(url)}: HTTP {resp.status}")
            return response
        raise StoreError(f"{method} {safe_url(url)}: too many redirects")

    def retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run `fn` until it stops raising TransientError, at most `attempts` times, backing off in between."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except TransientError as exc:
                if attempt == self.attempts:
                    raise StoreError(f"{what}: gave up after {attempt} attempts ({exc})") from None
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                self._sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not security
        raise AssertionError("unreachable")

    def call(self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None) -> Reply:
        """One attempt, body read whole (small JSON answers)."""
        return read_reply(self.open(method, url, headers, body), method)


def read_reply(resp: Response, method: str, limit: int = 4 << 20) -> Reply:
    """Read a small answer whole and close it; a body cut short is transient, one over `limit` is refused."""
    try:
        data = b"" if method == "HEAD" else resp.read(limit + 1)
        length = resp.headers.get("Content-Length")
        if method != "HEAD" and length is not None and len(data) < min(int(length), limit + 1):
            raise TransientError(f"{method} {safe_url(resp.url)}: connection closed mid-answer")
    except _NETWORK_ERRORS as exc:
        raise TransientError(f"{method} {safe_url(resp.url)}: {type(exc).__name__}") from None
    finally:
        resp.close()
    if len(data) > limit:
        raise StoreError(f"{method} {safe_url(resp.url)}: answer larger than {limit} bytes")
    return Reply(resp.status, resp.headers, data, resp.url)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes
    url: str


def _send(conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str], body: Body) -> None:
    if isinstance(body, FileSlice):
        with body.path.open("rb") as f:
            f.seek(body.offset)
            conn.request(method, target, body=_limited(f, body.length), headers=headers | _length(body.length))
    else:
        conn.request(method, target, body=body, headers=headers | ({} if body is None else _length(len(body))))


def _length(n: int) -> dict[str, str]:
    return {"Content-Length": str(n)}


def _limited(f: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        block = f.read(min(BLOCK, length))
        if not block:
            raise OSError("file shrank while uploading")
        length -= len(block)
        yield block


@contextmanager
def atomic_target(dest: Path) -> Iterator[Path]:
    """A temp file beside `dest` that replaces it only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download(
    transport: Transport, what: str, request: Callable[[dict[str, str]], Response], dest: Path, hexdigest: str
) -> int:
    """GET into `dest`, resuming with `Range` after a dropped connection, and verify the sha256.
    `request(extra_headers)` makes one attempt (fresh auth or signature each time); returns the size."""
    hasher, have, total = hashlib.sha256(), 0, None
    with atomic_target(dest) as tmp, tmp.open("wb") as out:

        def attempt() -> None:
            nonlocal hasher, have, total
            # A closed range where the size is known: some registries (crane's) parse only `bytes=a-b`.
            resp = request({"Range": f"bytes={have}-{total - 1 if total else ''}"} if have else {})
            try:
                if resp.status == 200 and have:  # the server ignored Range: start over
                    out.seek(0)
                    out.truncate()
                    hasher, have = hashlib.sha256(), 0
                elif resp.status not in (200, 206):
                    raise StoreError(f"{what}: HTTP {resp.status}")
                expected, got = resp.headers.get("Content-Length"), 0
                if resp.status == 200 and expected is not None:
                    total = int(expected)
                while block := resp.read(BLOCK):
                    out.write(block)
                    hasher.update(block)
                    have, got = have + len(block), got + len(block)
                if expected is not None and got < int(expected):  # http.client's read(n) takes EOF quietly
                    raise TransientError(f"{what}: connection closed after {have} bytes")
            except _NETWORK_ERRORS as exc:
                raise TransientError(f"{what}: {type(exc).__name__} after {have} bytes") from None
            finally:
                resp.close()

        transport.retry(what, attempt)
        out.flush()
        if hasher.hexdigest() != hexdigest:
            raise DigestMismatchError(f"{what}: content hashes to sha256:{hasher.hexdigest()}")
    return have
