"""Real servers for the store tests, as local processes on loopback ephemeral ports, and a TCP proxy that can
drop one connection mid-transfer (a flaky link, deterministically)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_HINT = "run `bash hack/build-oci-tools.sh` first (builds crane, oras, versitygw and registry into .cache/)"
TOOLS = ("crane", "oras", "versitygw", "registry")
S3_ACCESS, S3_SECRET, S3_BUCKET = "BMFLEETTESTKEY", "bmfleet-test-secret-do-not-log", "bmfleet-artifacts"
USERS = {"builder": "builder-password-do-not-log", "reader": "reader-password-do-not-log"}


def find_tools() -> Path | None:
    """The bin directory the build script printed: $BMFLEET_OCI_TOOLS, else the newest complete one in the cache."""
    if env := os.environ.get("BMFLEET_OCI_TOOLS"):
        return Path(env)
    cache = Path(os.environ.get("BMFLEET_CACHE", ROOT / ".cache"))
    done = sorted(cache.glob("oci-tools-*/bin/.complete"), key=lambda p: p.stat().st_mtime)
    return done[-1].parent if done else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, context: ssl.SSLContext | None = None) -> int | None:
    """Status of a GET, or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class Server:
    """A server process that can be stopped and started again on the same port (state dirs survive)."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log: Path, ready: Callable[[], bool]) -> None:
        self.name, self.argv, self.port, self.log, self.ready = name, list(argv), port, log, ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 20.0) -> Server:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ready():
                return self
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready on port {self.port}:\n{tail}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class CuttingProxy:
    """Forwards 127.0.0.1:port to a target; `cut_after(n)` makes the next connection that sends more than n bytes
    back to the client die right there (once). Records the request head of every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.requests: list[str] = []
        self.cuts = 0
        self._cut_after: int | None = None
        self._corrupt = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        with self._lock:
            self._cut_after = n

    def corrupt_next_body(self) -> None:
        """Flip the first body byte of the next response (a registry or link that returns wrong content)."""
        with self._lock:
            self._corrupt = True

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        first = True
        while data := _recv(client):
            if first:
                with self._lock:
                    self.requests.append(data.split(b"\r\n\r\n")[0].decode(errors="replace"))
                first = False
            upstream.sendall(data)
        _close(upstream)

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        sent, in_body = 0, False
        while data := _recv(upstream):
            with self._lock:
                if self._corrupt:
                    at = 0 if in_body else data.find(b"\r\n\r\n") + 4
                    in_body = in_body or at >= 4
                    if in_body and at < len(data):
                        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                        self._corrupt = False
                limit = self._cut_after
                if limit is not None and sent + len(data) > limit:
                    self._cut_after, self.cuts = None, self.cuts + 1
                    client.sendall(data[: max(limit - sent, 0)])
                    break
            client.sendall(data)
            sent += len(data)
        _close(client)
        _close(upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
