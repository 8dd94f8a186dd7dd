"""Start and stop a gateway: the watch thread, the status batcher, the device port (TLS) and the admin port.

`run` is what `bmfleet gateway` calls; `BackgroundGateway` runs the same thing on its own event loop in a thread,
for tests and embedding.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import os
import resource
import signal
import ssl
import threading
from pathlib import Path

from kubernetes import client, config

from bmfleet.gateway.config import GatewayConfig
from bmfleet.gateway.http import HttpServer
from bmfleet.gateway.kube import Kube
from bmfleet.gateway.server import API_THREADS, Gateway, admin_handler
from bmfleet.gateway.watch import Watcher

log = logging.getLogger(__name__)


def api_client(kubeconfig: Path | None, pool: int = 32) -> client.ApiClient:
    """In-cluster identity in a pod; a kubeconfig (flag or $KUBECONFIG) elsewhere."""
    cfg = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG")
        config.load_kube_config(config_file=path, client_configuration=cfg, persist_config=False)
    setattr(cfg, "connection_pool_maxsize", pool)  # noqa: B010 - the stubs lack it
    return client.ApiClient(cfg)


# asyncio's TLS protocol zero-fills a 256 KiB receive buffer per connection (3.11: bytearray(max_size)): 290 KiB
# per idle long poll, measured. Devices send requests of a few hundred bytes; one TLS record's worth is plenty, and
# leaves ~40 KiB per connection (mostly OpenSSL's own buffers).
TLS_READ_BUFFER = 8 << 10


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.num_tickets = 0  # agents open a fresh connection per request and never resume: tickets are wasted work
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def raise_fd_limit() -> None:
    """Each device holds a socket: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Running:
    """One started gateway on the current loop."""

    def __init__(self, cfg: GatewayConfig, api: client.ApiClient) -> None:
        self.config = cfg
        self.kube = Kube(api, cfg.namespace)
        self.gateway = Gateway(cfg, self.kube)
        self.stop_event = asyncio.Event()
        self.device = HttpServer(self.gateway.handle, self.gateway.observe, max_connections=cfg.max_connections)
        self.admin = AdminServer(HttpServer(admin_handler(self.gateway)))
        self.gateway.metrics.connections.set_function(lambda: self.device.connections)
        self.tls: ssl.SSLContext | None = None
        self.port = self.admin_port = 0
        self.watcher: Watcher | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
        self.watcher = Watcher(self.kube, self.gateway.view, loop, on_relist=self.gateway.metrics.relists.inc).start()
        self.tasks.append(asyncio.create_task(self.gateway.batcher.run(self.stop_event)))
        if self.config.tls_cert and self.config.tls_key:
            self.tls = tls_context(self.config.tls_cert, self.config.tls_key)
            self.tasks.append(asyncio.create_task(self._reload_tls()))
        self.port = await self.device.start(*self.config.listen, self.tls)
        if self.config.admin_listen:
            self.admin_port = await asyncio.to_thread(self.admin.start, *self.config.admin_listen)
        log.info("gateway for namespace %s on port %d (admin %d)", self.config.namespace, self.port, self.admin_port)

    async def _reload_tls(self) -> None:
        """Pick up a renewed certificate (cert-manager rewrites the mounted Secret) for new connections."""
        assert self.config.tls_cert and self.config.tls_key and self.tls
        stamp = self.config.tls_cert.stat().st_mtime_ns
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 60)
            with contextlib.suppress(OSError, ssl.SSLError):
                if (now := self.config.tls_cert.stat().st_mtime_ns) != stamp:
                    self.tls.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
                    stamp = now
                    log.info("reloaded the TLS certificate")

    async def stop(self) -> None:
        self.stop_event.set()
        await self.device.close()
        await asyncio.to_thread(self.admin.stop)
        self.gateway.api_pool.shutdown(wait=False)
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        if self.watcher is not None:
            await asyncio.to_thread(self.watcher.stop)


class AdminServer:
    """The admin port on its own thread and loop: probes and scrapes answer even when the device loop is saturated
    (a liveness probe stuck behind ten thousand TLS handshakes would get a busy gateway restarted)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-admin", daemon=True)

    def start(self, host: str, port: int) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.server.start(host, port), self.loop).result(30)

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def run(cfg: GatewayConfig) -> int:
    """Serve until SIGTERM or SIGINT."""
    raise_fd_limit()
    api = api_client(cfg.kubeconfig, cfg.write_concurrency + API_THREADS + 4)  # + registration threads and the watch

    async def main() -> None:
        running = Running(cfg, api)
        await running.start()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        await done.wait()
        log.info("stopping")
        await running.stop()

    asyncio.run(main())
    return 0


class BackgroundGateway:
    """A gateway on its own loop in a daemon thread; `url` once started. Inspect it through `gateway` only with
    `call` (the view lives on that loop)."""

    def __init__(self, cfg: GatewayConfig, api: client.ApiClient) -> None:
        self.config, self.api = cfg, api
        self.loop = asyncio.new_event_loop()
        self.running: Running | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)

    def start(self, timeout: float = 30) -> BackgroundGateway:
        self.thread.start()

        async def begin() -> Running:
            running = Running(self.config, self.api)
            await running.start()
            return running

        self.running = asyncio.run_coroutine_threadsafe(begin(), self.loop).result(timeout)
        return self

    @property
    def gateway(self) -> Gateway:
        assert self.running is not None
        return self.running.gateway

    @property
    def url(self) -> str:
        assert self.running is not None
        scheme = "https" if self.running.tls else "http"
        return f"{scheme}://127.0.0.1:{self.running.port}"

    def call(self, fn: object, timeout: float = 10) -> object:
        """Run `fn()` on the gateway's loop and return its result."""

        async def go() -> object:
            return fn()  # type: ignore[operator]

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
