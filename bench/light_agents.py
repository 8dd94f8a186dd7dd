"""Many protocol-level device agents on one asyncio loop, for fleets too big for one thread per real agent.

Each simulated device does what bmfleet_agent does on the wire (docs/gateway-protocol.md): register with the
bootstrap token, long-poll its desired state, download each blob (checking size and sha256), report Active, heartbeat;
register again on 401. It keeps nothing on disk and runs no probe: it measures the gateway, not the device.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit

HEARTBEAT = 60.0


class Http:
    def __init__(self, url: str, ca: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)

    async def request(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, bytes]:
        """One request on a fresh connection (as the agent does); (status, body)."""
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"

        async def go() -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ctx)
            try:
                writer.write(head.encode() + data)
                raw = await reader.read()
            finally:
                writer.close()
            status_line, _, rest = raw.partition(b"\r\n")
            return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]

        return await asyncio.wait_for(go(), timeout)


class Device:
    def __init__(self, name: str, http: Http, bootstrap: str, gate: asyncio.Semaphore, chip: str = "BM1684") -> None:
        self.name, self.http, self.bootstrap, self.gate, self.chip = name, http, bootstrap, gate, chip
        self.token = ""
        self.version = 0
        self.models: dict[str, dict[str, Any]] = {}
        self.reported_at = 0.0
        self.failures = 0

    async def register(self) -> None:
        async with self.gate:  # a fleet powering up does not all connect in the same millisecond
            body = {"deviceId": self.name, "chip": self.chip, "agentVersion": "light-sim", "sdkVersion": "sim"}
            status, data = await self.http.request("POST", "/v1/register", self.bootstrap, body)
        if status not in (200, 201):
            raise ConnectionError(f"register: HTTP {status}")
        self.token = json.loads(data)["token"]

    async def report(self) -> None:
        body = {"chip": self.chip, "agentVersion": "light-sim", "sdkVersion": "sim", "desiredVersion": self.version,
                "lastError": "", "models": list(self.models.values())}  # fmt: skip
        status, _ = await self.http.request("POST", f"/v1/devices/{self.name}/status", self.token, body)
        if status != 200:
            raise ConnectionError(f"status: HTTP {status}")
        self.reported_at = time.monotonic()

    async def install(self, m: dict[str, Any]) -> None:
        status, data = await self.http.request("GET", m["url"], self.token, timeout=300)
        ok = status == 200 and len(data) == m["size"] and "sha256:" + hashlib.sha256(data).hexdigest() == m["digest"]
        if status >= 500:
            raise ConnectionError(f"blob: HTTP {status}")  # retried with backoff, like the agent's DownloadFailed
        previous = self.models.get(m["name"], {}).get("activeDigest")
        self.models[m["name"]] = {
            "name": m["name"], "state": "Active" if ok else "Failed", "reason": "" if ok else "DownloadFailed",
            "desiredDigest": m["digest"], "activeDigest": m["digest"] if ok else previous,
            "previousDigest": previous, "bytesDownloaded": len(data), "size": m["size"],
        }  # fmt: skip

    async def step(self) -> None:
        if not self.token:
            await self.register()
            await self.report()
        path = f"/v1/devices/{self.name}/desired?wait=30&version={self.version}"
        status, data = await self.http.request("GET", path, self.token, timeout=90)
        if status in (401, 403, 404):
            self.token = ""
            raise ConnectionError(f"poll: HTTP {status}")
        if status == 200:
            doc = json.loads(data)
            for m in doc["models"]:
                have = self.models.get(m["name"], {}).get("activeDigest")
                if m.get("action", "install") == "install" and have != m["digest"]:
                    await self.install(m)  # a failure leaves `version` as it was: the next poll answers at once
            self.version = int(doc["version"])
            await self.report()
        elif status != 304:
            raise ConnectionError(f"poll: HTTP {status}")
        elif time.monotonic() - self.reported_at > HEARTBEAT:
            await self.report()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
                self.failures = 0
            except (OSError, ConnectionError, TimeoutError, ValueError, KeyError):
                self.failures += 1  # back off like the agent: 5 s doubling, with jitter
                await asyncio.sleep(min(300.0, 5 * 2 ** min(self.failures - 1, 6)) * random.uniform(0.5, 1.0))


async def run(url: str, ca: str, bootstrap: str, names: list[str], stop_after: asyncio.Event | None = None) -> None:
    """Run `names` until stdin closes (bench worker) or `stop_after` is set."""
    stop = stop_after or asyncio.Event()
    http, gate = Http(url, ca), asyncio.Semaphore(100)
    tasks = [asyncio.create_task(Device(n, http, bootstrap, gate).run(stop)) for n in names]
    if stop_after is None:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        stop.set()
    else:
        await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
