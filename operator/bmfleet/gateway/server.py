"""The device-facing routes of docs/gateway-protocol.md.

A credential is good for its own device's paths and for the blobs its own desired state names, nothing else:
another device's path is 403 whether or not that device exists, another blob is 404 whether or not it exists.
Authentication reads only the in-memory view, so a revocation (spec.revokedCredentials) applies to the next
request and to long polls and downloads already in flight as soon as the watch delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from bmfleet.gateway import blobs, http
from bmfleet.gateway.config import GatewayConfig
from bmfleet.gateway.credentials import BootstrapToken, RefusedError, Registrar
from bmfleet.gateway.http import Request, Response, error, json_response
from bmfleet.gateway.kube import Kube
from bmfleet.gateway.metrics import GatewayMetrics
from bmfleet.gateway.status import StatusBatcher, sanitize
from bmfleet.gateway.view import REVOKED, Credential, Device, View
from bmfleet.store.uris import load_credentials

log = logging.getLogger(__name__)

_DEVICE_PATH = re.compile(r"^/v1/devices/([a-z0-9][a-z0-9-]{0,62})/(desired|status|rotate)$")
_BLOB_PATH = re.compile(r"^/v1/blobs/(sha256:[0-9a-f]{64})$")
UNAUTHORIZED = "unknown, revoked or expired credential"
API_THREADS = 16
MAX_UNKNOWN_WAITS = 256  # unknown tokens wait up to 1 s for the watch (a replica may lag); this many at once


class Gateway:
    def __init__(self, config: GatewayConfig, kube: Kube, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.kube = kube
        self.metrics = GatewayMetrics()
        self.view = View(config.namespace, clock)
        self.batcher = StatusBatcher(
            kube, self.view, self.metrics, config.batch_interval, config.batch_max, config.write_concurrency,
            config.heartbeat, config.last_seen_interval, clock,
        )  # fmt: skip
        self.registrar = Registrar(kube, config.rotation_grace, clock)
        self.bootstrap = BootstrapToken(kube, config.bootstrap_secret, config.bootstrap_key)
        self.blobs = blobs.BlobSource(
            config.store_uris, config.pvc_root, config.cache_dir,
            load_credentials(config.store_credentials), config.store_ca_bundle,
            on_fetch=lambda result: self.metrics.blob_fetches.labels(result).inc(),
        )  # fmt: skip
        # Registration and rotation wait on the API server (2-3 calls each); a fleet coming up registers at once.
        self.api_pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="gateway-api")
        self.bytes_served = 0
        self._unknown_waits = 0
        self._registering: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # device id -> (lock, [users])
        self.view.on_change.append(lambda old, new: self.metrics.devices.set(len(self.view.devices)))
        kube.on_call = lambda verb: self.metrics.api_requests.labels(verb).inc()

    # -- plumbing ------------------------------------------------------------------------------------------
    def observe(self, req: Request, resp: Response, sent: int) -> None:
        self.metrics.requests.labels(_route(req.path), str(resp.status)).inc()

    def _sent(self, n: int) -> None:
        self.bytes_served += n
        self.metrics.bytes_served.inc(n)

    async def handle(self, req: Request) -> Response:
        if req.path == "/healthz":
            return Response(200, b"ok\n")
        if req.path == "/readyz":
            return Response(200, b"ok\n") if self.view.synced else error(503, "NotReady", "watch not synced yet")
        if req.path == "/v1/register":
            return await self.register(req) if req.method == "POST" else _method()
        if m := _BLOB_PATH.match(req.path):
            return await self.blob(req, m.group(1)) if req.method in ("GET", "HEAD") else _method()
        if m := _DEVICE_PATH.match(req.path):
            name, what = m.groups()
            want = "GET" if what == "desired" else "POST"
            if req.method != want:
                return _method()
            auth = await self._auth(req, name)
            if isinstance(auth, Response):
                return auth
            if what == "desired":
                return await self.desired(req, auth[0], auth[1])
            if what == "status":
                return self.status(req, auth[0], auth[1])
            return await self.rotate(auth[0], auth[1])
        return error(404, "NotFound", "no such endpoint")

    async def _auth(self, req: Request, device: str | None) -> tuple[Device, Credential] | Response:
        """Bearer token → (its device, credential); 401 for unknown, revoked or expired, 403 for another device."""
        token = _bearer(req)
        result = self.view.authenticate(token) if token else None
        if result is None and token and device is not None and self._unknown_waits < MAX_UNKNOWN_WAITS:
            self._unknown_waits += 1  # maybe registered through another replica a moment ago
            try:
                await self.view.wait(device, 1.0)
            finally:
                self._unknown_waits -= 1
            result = self.view.authenticate(token)
        if result is None or result == REVOKED:
            return error(401, "Unauthorized", UNAUTHORIZED)
        assert not isinstance(result, str)
        if device is not None and result[0].name != device:
            return error(403, "Forbidden", "this credential is for another device")
        self.batcher.touch(result[0].name)
        return result

    def _valid(self, cred: Credential, name: str) -> bool:
        """Whether `cred` still belongs to device `name`, unrevoked and unexpired (re-checked during long requests)."""
        device = self.view.devices.get(name)
        current = next((c for c in device.credentials if c.id == cred.id), None) if device else None
        if device is None or current is None or cred.id in device.revoked:
            return False
        expires = current.expires
        return expires is None or self.view.clock() < expires

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """Serialize work per key (an empty key is never serialized); the lock goes away with its last user."""
        if not key:
            yield
            return
        lock, users = self._registering.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._registering[key]

    # -- routes --------------------------------------------------------------------------------------------
    async def register(self, req: Request) -> Response:
        token = _bearer(req)
        try:
            body = req.json()
        except ValueError:
            return error(400, "BadRequest", "body is not JSON")
        try:
            loop = asyncio.get_running_loop()
            if not token or not await loop.run_in_executor(self.api_pool, self.bootstrap.check, token):
                self.metrics.registrations.labels("bad-token").inc()
                return error(401, "Unauthorized", "bad bootstrap token")
            # One registration per device id at a time: an agent whose answer was lost retries while the first is
            # still running; in parallel they would only fight over the resourceVersion.
            asked = body.get("deviceId") if isinstance(body, dict) else None
            async with self._one_at_a_time(asked if isinstance(asked, str) else ""):
                name, device_token, obj = await loop.run_in_executor(self.api_pool, self.registrar.register, body)
        except RefusedError as e:
            self.metrics.registrations.labels(e.reason).inc()
            return error(e.status, e.reason, str(e))
        except client.ApiException as e:
            log.warning("registration: API server answered %s %s", e.status, e.reason)
            return error(503, "Unavailable", "registration is not possible right now", {"Retry-After": "30"})
        self.view.apply("MODIFIED", obj)
        self.metrics.registrations.labels("ok").inc()
        log.info("registered device %s", name)
        return json_response(201, {"deviceId": name, "token": device_token})

    async def desired(self, req: Request, device: Device, cred: Credential) -> Response:
        try:
            seen = int(req.query.get("version", "0"))
            wait = max(0.0, min(float(req.query.get("wait", "0")), float(self.config.max_poll_wait)))
        except ValueError:
            return error(400, "BadRequest", "version and wait must be numbers")
        deadline = asyncio.get_running_loop().time() + wait
        self.metrics.longpolls.inc()
        try:
            while True:
                current = self.view.devices.get(device.name)
                if current is None or not self._valid(cred, device.name):
                    return error(401, "Unauthorized", UNAUTHORIZED)
                if current.version != seen:
                    return Response(200, current.doc, {"Content-Type": "application/json"})
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return Response(304)
                await self.view.wait(device.name, left)
        finally:
            self.metrics.longpolls.dec()

    def status(self, req: Request, device: Device, cred: Credential) -> Response:
        try:
            fragment = sanitize(req.json())
        except ValueError:
            return error(400, "BadRequest", "body is not JSON")
        self.batcher.report(device.name, fragment)
        return json_response(200, {"rotateCredential": True} if cred.not_after else {})

    async def rotate(self, device: Device, cred: Credential) -> Response:
        try:
            loop = asyncio.get_running_loop()
            token, until, obj = await loop.run_in_executor(self.api_pool, self.registrar.rotate, device.name, cred.id)
        except RefusedError as e:
            return error(e.status, e.reason, str(e))
        except client.ApiException as e:
            log.warning("rotation: API server answered %s %s", e.status, e.reason)
            return error(503, "Unavailable", "rotation is not possible right now", {"Retry-After": "30"})
        self.view.apply("MODIFIED", obj)
        log.info("rotated the credential of %s", device.name)
        return json_response(200, {"token": token, "previousTokenValidUntil": until})

    async def blob(self, req: Request, digest: str) -> Response:
        auth = await self._auth(req, None)
        if isinstance(auth, Response):
            return auth
        device, cred = auth
        ref = device.blobs.get(digest)
        if ref is None:
            return error(404, "NotFound", "no such blob")
        try:
            local = await self.blobs.local(ref)
        except blobs.BlobError as e:
            log.warning("blob %s for %s: %s", digest, device.name, e)
            return error(e.status, "BlobUnavailable", str(e), {"Retry-After": "30"} if e.status >= 500 else None)
        rng = blobs.parse_range(req.headers.get("range"), local.size)
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", "ETag": f'"{digest}"'}
        if rng == "unsatisfiable":
            return Response(416, headers=headers | {"Content-Range": f"bytes */{local.size}"})
        status, start, end = (200, 0, local.size - 1) if rng is None else (206, *rng)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{local.size}"
        length = end - start + 1
        writer = blobs.body_writer(local.path, start, length, lambda: self._valid(cred, device.name), self._sent)
        return Response(status, headers=headers, stream=writer, length=length)


def _bearer(req: Request) -> str:
    header = req.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _method() -> Response:
    return error(405, "MethodNotAllowed", "method not allowed here")


def _route(path: str) -> str:
    if path.startswith("/v1/blobs/"):
        return "blob"
    if m := _DEVICE_PATH.match(path):
        return m.group(2)
    known = ("/v1/register", "/healthz", "/readyz", "/metrics")
    return path.strip("/").removeprefix("v1/") if path in known else "other"


def admin_handler(gw: Gateway) -> http.Handler:
    """The plain-HTTP admin port: probes and metrics, never device data."""

    async def handle(req: Request) -> Response:
        if req.path == "/metrics":
            return Response(200, gw.metrics.render(), {"Content-Type": "text/plain; version=0.0.4"})
        if req.path in ("/healthz", "/readyz"):
            return await gw.handle(req)
        return error(404, "NotFound", "no such endpoint")

    return handle
