"""The protocol end to end: REAL agents register with the real gateway, long-poll, download with Range resume and
report; the test writes spec.desired as the rollout controller will and reads the outcome from EdgeDevice status
on the real API server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bmfleet_agent.transport import HttpTransport

from bmfleet.bmodel import synth
from bmfleet.cli.devenv import wait_for
from bmfleet.gateway.runner import BackgroundGateway
from tests.gateway.conftest import BOOTSTRAP
from tests.gateway.support import Client, Devices, desired_entry, metric, put_blob

pytestmark = pytest.mark.timeout(240)


def bmodel(label: str, weights: int = 3000) -> bytes:
    return synth.classifier(label, chip="BM1684", weights=synth.filler(f"weights/{label}", weights))


def model_state(devices: Devices, device: str, model: str) -> dict[str, Any] | None:
    return devices.model_status(device, model)


def test_agents_register_long_poll_download_and_report_active(
    gateway: BackgroundGateway, devices: Devices, store: Path, make_agent: Callable[..., Any]
) -> None:
    agents = [make_agent(f"proto-{i}", poll_wait=20, labels={"site": "plant-3"}) for i in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    try:
        # Registration created the EdgeDevices: labels from the agent, spec.chip, only hashes of the tokens.
        objs = wait_for(lambda: _all(devices, ["proto-0", "proto-1"]), 30, "EdgeDevices created by registration")
        for obj, agent in zip(objs, agents, strict=True):
            assert obj["metadata"]["labels"] == {"site": "plant-3"} and obj["spec"]["chip"] == "BM1684"
            creds = obj["status"]["credentials"]
            assert len(creds) == 1 and set(creds[0]) == {"id", "sha256", "issuedAt"}
            assert agent.credential.token not in json.dumps(obj)  # never the token itself
        # Both are now parked in a long poll; a desired state reaches them in one round trip, not after 20 s.
        wait_for(lambda: metric(gateway, "bmfleet_gateway_longpolls_in_flight") == 2, 30, "both agents polling")
        data = bmodel("det-v1")
        put_blob(store, data)
        entry = desired_entry("det", data, f"file://{store}", rollout="det")
        started = time.monotonic()
        for name in ("proto-0", "proto-1"):
            devices.set_desired(name, [entry])
        for name in ("proto-0", "proto-1"):
            got = wait_for(lambda n=name: _active(devices, n, "det", entry["digest"]), 30, f"{name} det Active")
            assert got["desiredDigest"] == entry["digest"] and got["size"] == len(data)
        assert time.monotonic() - started < 10
        # The agents hold the verified model; status says Ready once both report it.
        for agent in agents:
            assert agent.state.models["det"].active_digest == entry["digest"]
        for name in ("proto-0", "proto-1"):
            wait_for(lambda n=name: _condition(devices.get(n), "Ready") == "True", 30, f"{name} Ready")
            obj = devices.get(name)
            assert obj["status"]["desiredVersion"] == obj["spec"]["desired"]["version"]
            assert _condition(obj, "Online") == "True" and obj["status"]["lastSeen"]
            assert obj["status"]["agentVersion"] and obj["status"]["sdkVersion"] == "0.4.9-test"
        # An upgrade is a new desired version: v2 replaces v1, v1 stays as previous.
        data2 = bmodel("det-v2")
        put_blob(store, data2)
        entry2 = desired_entry("det", data2, f"file://{store}", rollout="det", generation=2)
        for name in ("proto-0", "proto-1"):
            devices.set_desired(name, [entry2])
        for name in ("proto-0", "proto-1"):
            got = wait_for(lambda n=name: _active(devices, n, "det", entry2["digest"]), 30, f"{name} det v2 Active")
            assert got["previousDigest"] == entry["digest"]
    finally:
        stop.set()
        for t in threads:
            t.join(40)


class CutFirstBlob:
    """The agent's own HttpTransport, except that its first blob request ends after `cut` bytes, like a link that
    drops mid-download (asked as `Range: bytes=0-<cut-1>` so the gateway sends exactly those bytes and the count of
    bytes served stays exact). Records every blob request's Range and the answer's Content-Range."""

    def __init__(self, inner: Any, cut: int) -> None:
        self.inner, self.cut = inner, cut
        self.ranges: list[tuple[str | None, int, str | None]] = []

    def request(self, method: str, url: str, headers: Any, body: Any = None, timeout: float = 60.0) -> Any:
        hdrs = dict(headers)
        if "/v1/blobs/" in url and self.cut:
            hdrs["Range"], self.cut = f"bytes=0-{self.cut - 1}", 0
        resp = self.inner.request(method, url, hdrs, body, timeout)
        if "/v1/blobs/" in url:
            self.ranges.append((hdrs.get("Range"), resp.status, resp.headers.get("content-range")))
        return resp


def test_download_resumes_with_range_and_serves_each_byte_once(
    gateway: BackgroundGateway, devices: Devices, store: Path, make_agent: Callable[..., Any], tls: Any
) -> None:
    cut = 150_000
    transport = CutFirstBlob(HttpTransport(str(tls[0])), cut)
    agent = make_agent("resume-0", transport=transport)
    agent.run_once()
    data = bmodel("det-big", weights=400_000)
    put_blob(store, data)
    entry = desired_entry("det", data, f"file://{store}")
    devices.set_desired("resume-0", [entry])
    before = gateway.call(lambda: gateway.gateway.bytes_served)

    def step() -> bool:
        agent.run_once()
        return agent.state.models.get("det") is not None and agent.state.models["det"].active_digest == entry["digest"]

    wait_for(step, 60, "resumed download active", interval=0.05)
    size = len(data)
    assert transport.ranges == [
        (f"bytes=0-{cut - 1}", 206, f"bytes 0-{cut - 1}/{size}"),  # the link "dropped" here
        (f"bytes={cut}-", 206, f"bytes {cut}-{size - 1}/{size}"),  # the agent resumed from what it had
    ]
    assert gateway.call(lambda: gateway.gateway.bytes_served) - before == size  # not one byte twice
    wait_for(lambda: _active(devices, "resume-0", "det", entry["digest"]), 30, "resume-0 reported Active")


def test_blob_range_semantics(gateway: BackgroundGateway, devices: Devices, store: Path, tls: Any) -> None:
    client = Client(gateway.url, tls[0])
    token = client.register(BOOTSTRAP, "range-0")
    data = bmodel("det-range", weights=50_000)
    put_blob(store, data)
    entry = desired_entry("det", data, f"file://{store}")
    devices.set_desired("range-0", [entry])
    path = f"/v1/blobs/{entry['digest']}"
    wait_for(lambda: client.request("HEAD", path, token)[0] == 200, 10, "blob assigned in the gateway's view")
    status, headers, body = client.request("GET", path, token)
    assert status == 200 and body == data and headers["accept-ranges"] == "bytes"
    status, headers, body = client.request("GET", path, token, headers={"Range": "bytes=1000-"})
    assert status == 206 and body == data[1000:]
    assert headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    status, headers, body = client.request("GET", path, token, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    status, headers, body = client.request("GET", path, token, headers={"Range": "bytes=-5"})
    assert status == 206 and body == data[-5:]
    status, headers, _ = client.request("GET", path, token, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"


def test_long_poll_waits_then_304_and_probes(gateway: BackgroundGateway, tls: Any) -> None:
    client = Client(gateway.url, tls[0])
    token = client.register(BOOTSTRAP, "poll-0")
    started = time.monotonic()
    status, _, body = client.request("GET", "/v1/devices/poll-0/desired?wait=1&version=0", token)
    assert status == 304 and body == b"" and 0.9 <= time.monotonic() - started < 5
    assert client.request("GET", "/readyz")[0] == 200 and client.request("GET", "/healthz")[0] == 200
    assert client.request("GET", "/metrics")[0] == 404  # metrics only on the admin port
    assert client.request("GET", "/v1/devices/poll-0/status", token)[0] == 405


def _all(devices: Devices, names: list[str]) -> list[dict[str, Any]] | None:
    objs = {o["metadata"]["name"]: o for o in devices.list()}
    found = [objs.get(n) for n in names]
    if any(o is None or not (o.get("status") or {}).get("credentials") for o in found):
        return None
    return [o for o in found if o is not None]


def _active(devices: Devices, name: str, model: str, digest: str) -> dict[str, Any] | None:
    m = devices.model_status(name, model)
    return m if m and m.get("state") == "Active" and m.get("activeDigest") == digest else None


def _condition(obj: dict[str, Any], type_: str) -> str | None:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == type_), None)


def _requests(gateway: BackgroundGateway, route: str, code: str) -> float:
    return metric(gateway, "bmfleet_gateway_requests_total", route=route, code=code)
