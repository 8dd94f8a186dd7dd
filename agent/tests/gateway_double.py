"""TEST DOUBLE of the bmfleet gateway -- not the gateway.

A small stdlib http.server that speaks docs/gateway-protocol.md so the agent can be tested on its own, with
knobs to break things: drop a blob connection after K bytes, serve corrupted bytes, answer 503, go down,
redirect blobs to another origin. It counts the blob bytes it serves so tests can prove a resume fetched only
what was missing. The real gateway (operator/bmfleet/gateway) is written separately against the same
document; nothing here is shared with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class GatewayDouble:
    def __init__(
        self, bootstrap_token: str = "boot-secret", grace: float = 3600.0, tls: Optional[Tuple[str, str]] = None
    ) -> None:
        self.bootstrap_token = bootstrap_token
        self.grace = grace
        self.clock: Callable[[], float] = time.time
        self.lock = threading.Condition()
        self.blobs: Dict[str, bytes] = {}
        self.desired: Dict[str, Dict[str, Any]] = {}  # device -> {"version": n, "models": [...]}
        self.tokens: Dict[str, Tuple[str, Optional[float]]] = {}  # token -> (device, expires at)
        self.reports: Dict[str, List[Dict[str, Any]]] = {}
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        self.served: Dict[str, int] = {}  # digest -> blob body bytes written
        # Faults.
        self.drop_after: Dict[str, List[int]] = {}  # digest -> [K bytes, times left]
        self.corrupt: Set[str] = set()
        self.fail_next: Dict[str, int] = {}  # endpoint kind -> number of 503s to answer
        self.down = False  # close every connection without an answer
        self.ignore_range = False
        self.redirect_blobs_to: Optional[str] = None
        self.rotate_on_next_status = False
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        scheme = "http"
        if tls:  # (cert chain, key): serve HTTPS so the agent's CA-bundle verification is exercised
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> GatewayDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- test API ---------------------------------------------------------------------------------------
    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def model(self, name: str, data: bytes, chip: str = "BM1684", **extra: Any) -> Dict[str, Any]:
        digest = self.add_blob(data)
        m = {"name": name, "digest": digest, "size": len(data), "chip": chip, "url": f"/v1/blobs/{digest}"}
        m.update(extra)
        return m

    def set_desired(self, device: str, models: List[Dict[str, Any]]) -> int:
        with self.lock:
            version = self.desired.get(device, {}).get("version", 0) + 1
            self.desired[device] = {"version": version, "models": models}
            self.lock.notify_all()
            return version

    def last_report(self, device: str) -> Dict[str, Any]:
        return self.reports[device][-1]

    def report_model(self, device: str, name: str) -> Dict[str, Any]:
        return next(m for m in self.last_report(device)["models"] if m["name"] == name)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a simulated fleet connects all at once
    daemon_threads = True


def _handler(gw: GatewayDouble) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"null")

        def _device(self, device: str) -> bool:
            """Check the bearer token belongs to `device` (a token sees only its own device)."""
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            with gw.lock:
                owner, expires = gw.tokens.get(token, ("", None))
            if not owner or (expires is not None and gw.clock() > expires):
                self._send(401, {"error": "Unauthorized", "message": "unknown or expired credential"})
                return False
            if owner != device:
                self._send(403, {"error": "Forbidden", "message": "credential is for another device"})
                return False
            return True

        def _fault(self, kind: str) -> bool:
            if gw.down:
                self.connection.shutdown(socket.SHUT_RDWR)
                return True
            with gw.lock:
                if gw.fail_next.get(kind, 0) > 0:
                    gw.fail_next[kind] -= 1
                    self._send(503, {"error": "Unavailable", "message": "injected"}, {"Retry-After": "1"})
                    return True
            return False

        def do_POST(self) -> None:
            gw.requests.append(("POST", self.path, dict(self.headers)))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["v1", "register"]:
                if self._fault("register"):
                    return
                body = self._body() or {}
                if self.headers.get("Authorization") != "Bearer " + gw.bootstrap_token:
                    self._send(401, {"error": "Unauthorized", "message": "bad bootstrap token"})
                    return
                device = body.get("deviceId") or "dev-" + secrets.token_hex(4)
                token = secrets.token_urlsafe(24)
                with gw.lock:
                    gw.tokens[token] = (device, None)
                self._send(201, {"deviceId": device, "token": token})
            elif len(parts) == 4 and parts[:2] == ["v1", "devices"] and parts[3] in ("status", "rotate"):
                if self._fault(parts[3]) or not self._device(parts[2]):
                    return
                body = self._body()
                if parts[3] == "status":
                    gw.reports.setdefault(parts[2], []).append(body)
                    rotate, gw.rotate_on_next_status = gw.rotate_on_next_status, False
                    self._send(200, {"rotateCredential": True} if rotate else {})
                    return
                old = self.headers["Authorization"][7:]
                token = secrets.token_urlsafe(24)
                until = gw.clock() + gw.grace
                with gw.lock:
                    gw.tokens[old] = (parts[2], until)
                    gw.tokens[token] = (parts[2], None)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
                self._send(200, {"token": token, "previousTokenValidUntil": stamp})
            else:
                self._send(404, {"error": "NotFound", "message": self.path})

        def do_GET(self) -> None:
            gw.requests.append(("GET", self.path, dict(self.headers)))
            path, _, query = self.path.partition("?")
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["v1", "devices"] and parts[3] == "desired":
                if self._fault("desired") or not self._device(parts[2]):
                    return
                q = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
                seen, wait = int(q.get("version", 0)), min(float(q.get("wait", 0)), 30.0)
                deadline = time.monotonic() + wait
                with gw.lock:
                    while gw.desired.get(parts[2], {}).get("version", 0) == seen:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        gw.lock.wait(left)
                    doc = gw.desired.get(parts[2])
                if doc is None or doc["version"] == seen:
                    self._send(304)
                else:
                    self._send(200, doc)
            elif len(parts) == 3 and parts[:2] == ["v1", "blobs"]:
                self._blob(parts[2], external=False)
            elif len(parts) == 3 and parts[:2] == ["store", "blobs"]:
                self._blob(parts[2], external=True)
            else:
                self._send(404, {"error": "NotFound", "message": self.path})

        def _blob(self, digest: str, external: bool) -> None:
            if self._fault("blob"):
                return
            if not external:
                with gw.lock:
                    owner, expires = gw.tokens.get(self.headers.get("Authorization", "")[7:], ("", None))
                if not owner or (expires is not None and gw.clock() > expires):
                    self._send(401, {"error": "Unauthorized", "message": "blob needs a device credential"})
                    return
                if gw.redirect_blobs_to:
                    self._send(307, headers={"Location": f"{gw.redirect_blobs_to}/store/blobs/{digest}"})
                    return
            data = gw.blobs.get(digest)
            if data is None:
                self._send(404, {"error": "NotFound", "message": digest})
                return
            if digest in gw.corrupt:
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
            start, end = 0, len(data) - 1
            m = _RANGE.match(self.headers.get("Range", ""))
            if m and not gw.ignore_range:
                start = int(m.group(1))
                end = min(int(m.group(2)), end) if m.group(2) else end
                if start >= len(data):
                    self._send(416, headers={"Content-Range": f"bytes */{len(data)}"})
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            body = data[start : end + 1]
            with gw.lock:
                drop = gw.drop_after.get(digest)
                if drop and drop[1] > 0:
                    drop[1] -= 1
                    body = body[: drop[0]]
                    cut = True
                else:
                    cut = False
                gw.served[digest] = gw.served.get(digest, 0) + len(body)
            self.wfile.write(body)
            self.wfile.flush()
            if cut:
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
