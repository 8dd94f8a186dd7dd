"""Status reports are coalesced in memory and written in flushes: many reports, few API writes, and the last
report is what lands in EdgeDevice status."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bmfleet.cli.devenv import wait_for
from bmfleet.gateway.runner import BackgroundGateway
from tests.gateway.conftest import BOOTSTRAP
from tests.gateway.support import Client, Devices

pytestmark = pytest.mark.timeout(240)
DIGEST = "sha256:" + "ab" * 32


def _report(n: int, size: int = 1000) -> dict[str, Any]:
    model = {"name": "det", "state": "Downloading", "desiredDigest": DIGEST, "bytesDownloaded": n, "size": size}
    return {"chip": "BM1684", "agentVersion": "0.1.0", "sdkVersion": "t", "desiredVersion": 0, "models": [model]}


def _counts(gateway: BackgroundGateway) -> tuple[int, int, int]:
    b = gateway.gateway.batcher
    return gateway.call(lambda: (b.reports, b.patches, b.batches))  # type: ignore[return-value]


def _settled(gateway: BackgroundGateway) -> bool:
    return bool(gateway.call(lambda: not gateway.gateway.batcher.pending))


def test_many_reports_few_writes(gateway: BackgroundGateway, devices: Devices, tls: Any) -> None:
    client = Client(gateway.url, tls[0])
    n_devices, n_reports = 20, 10
    tokens = {f"batch-{i}": client.register(BOOTSTRAP, f"batch-{i}") for i in range(n_devices)}
    wait_for(lambda: _settled(gateway), 10, "registration writes settled")
    reports0, patches0, batches0 = _counts(gateway)

    def burst(item: tuple[str, str]) -> None:
        name, token = item
        for n in range(1, n_reports + 1):  # a download making progress, reported as fast as the link allows
            assert client.request("POST", f"/v1/devices/{name}/status", token, _report(n * 100))[0] == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(burst, tokens.items()))
    wait_for(lambda: _settled(gateway), 10, "flushes done")
    reports, patches, batches = (a - b for a, b in zip(_counts(gateway), (reports0, patches0, batches0), strict=True))
    assert reports == n_devices * n_reports
    # One write per device per flush at most: a 200-report burst over ~1 s costs a few dozen writes, not 200.
    assert patches <= n_devices * 4 and patches < reports / 2, (reports, patches, batches)
    assert batches <= patches
    # What landed is each device's last report.
    for name in tokens:
        wait_for(lambda n=name: (devices.model_status(n, "det") or {}).get("bytes") == n_reports * 100, 10, name)


def test_an_unchanged_heartbeat_costs_no_write(gateway: BackgroundGateway, devices: Devices, tls: Any) -> None:
    client = Client(gateway.url, tls[0])
    token = client.register(BOOTSTRAP, "batch-quiet")
    assert client.request("POST", "/v1/devices/batch-quiet/status", token, _report(5))[0] == 200
    wait_for(lambda: (devices.model_status("batch-quiet", "det") or {}).get("bytes") == 5, 10, "first report written")
    wait_for(lambda: _settled(gateway), 10, "flushed")
    _, patches0, _ = _counts(gateway)
    for _ in range(30):
        assert client.request("POST", "/v1/devices/batch-quiet/status", token, _report(5))[0] == 200
    wait_for(lambda: _counts(gateway)[0] >= 30 and _settled(gateway), 10, "reports taken and flushed")
    assert _counts(gateway)[1] == patches0  # the same snapshot again: nothing to write (lastSeen is fresh)


def test_malformed_reports_never_reach_the_api(gateway: BackgroundGateway, devices: Devices, tls: Any) -> None:
    client = Client(gateway.url, tls[0])
    token = client.register(BOOTSTRAP, "batch-junk")
    junk = {
        "chip": "x" * 500, "desiredVersion": -3, "lastError": 7, "credentials": [{"id": "forged", "sha256": "00"}],
        "models": [
            {"name": "../../etc", "state": "Active"},
            {"name": "det", "state": "Pwned"},
            {"name": "ok", "state": "Active", "activeDigest": "sha256:nothex", "reason": "x y", "size": "big"},
        ],
    }  # fmt: skip
    assert client.request("POST", "/v1/devices/batch-junk/status", token, junk)[0] == 200
    assert client.request("POST", "/v1/devices/batch-junk/status", token, b"not json")[0] == 400
    wait_for(lambda: devices.model_status("batch-junk", "ok") is not None, 10, "sanitized report written")
    status = devices.get("batch-junk")["status"]
    assert status["models"] == [{"name": "ok", "state": "Active"}]
    assert status["chip"] == "x" * 32 and "desiredVersion" not in status and "lastError" not in status
    assert [c["id"] for c in status["credentials"]] != ["forged"]
