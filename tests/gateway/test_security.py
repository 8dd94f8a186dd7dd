"""A device credential is good for its own device only (as NodeRestriction confines kubelets), a revoked one is
refused at once, and rotation keeps an offline device working through the grace period."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bmfleet.cli.devenv import wait_for
from bmfleet.gateway.runner import BackgroundGateway
from tests.gateway.conftest import BOOTSTRAP
from tests.gateway.support import Client, Devices, desired_entry, put_blob

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def client(gateway: BackgroundGateway, tls: Any) -> Client:
    return Client(gateway.url, tls[0])


def _assigned(gateway: BackgroundGateway, device: str, digest: str) -> bool:
    return bool(gateway.call(lambda: digest in gateway.gateway.view.devices[device].blobs))


def test_a_credential_reaches_only_its_own_device(
    gateway: BackgroundGateway, client: Client, devices: Devices, store: Path
) -> None:
    alice, bob = client.register(BOOTSTRAP, "sec-alice"), client.register(BOOTSTRAP, "sec-bob")
    a_blob, b_blob = b"alice model" * 100, b"bob model" * 100
    put_blob(store, a_blob)
    put_blob(store, b_blob)
    a_entry = desired_entry("det", a_blob, f"file://{store}")
    b_entry = desired_entry("det", b_blob, f"file://{store}")
    devices.set_desired("sec-alice", [a_entry])
    devices.set_desired("sec-bob", [b_entry])
    wait_for(lambda: _assigned(gateway, "sec-bob", b_entry["digest"]), 10, "bob's blob in the view")
    wait_for(lambda: _assigned(gateway, "sec-alice", a_entry["digest"]), 10, "alice's blob in the view")

    # Her own things work.
    assert client.request("GET", "/v1/devices/sec-alice/desired?version=0", alice)[0] == 200
    assert client.request("GET", f"/v1/blobs/{a_entry['digest']}", alice)[0] == 200
    # Bob's desired state: 403, exactly as for a device that does not exist (nothing about others leaks).
    for other in ("sec-bob", "sec-nobody"):
        status, _, body = client.request("GET", f"/v1/devices/{other}/desired?version=0", alice)
        assert status == 403 and json.loads(body)["error"] == "Forbidden"
        assert "sec-bob" not in body.decode()
    # Bob's blob: 404, the same answer as for a blob that exists nowhere.
    status, _, body = client.request("GET", f"/v1/blobs/{b_entry['digest']}", alice)
    assert status == 404
    assert client.request("GET", "/v1/blobs/sha256:" + "0" * 64, alice)[0] == 404
    assert client.request("GET", f"/v1/blobs/{b_entry['digest']}", bob)[0] == 200
    # Bob's status and credential: refused, and his status is untouched.
    before = devices.get("sec-bob").get("status")
    forged = {"desiredVersion": 99, "models": [{"name": "det", "state": "Failed", "reason": "ProbeFailed"}]}
    assert client.request("POST", "/v1/devices/sec-bob/status", alice, forged)[0] == 403
    assert client.request("POST", "/v1/devices/sec-bob/rotate", alice, {})[0] == 403
    wait_for(lambda: gateway.call(lambda: not gateway.gateway.batcher.pending), 10, "no status writes pending")
    assert devices.get("sec-bob").get("status") == before
    # No credential, a garbage one, or a bootstrap token used as a device credential: 401.
    for token in (None, "garbage", BOOTSTRAP):
        assert client.request("GET", "/v1/devices/sec-alice/desired?version=0", token)[0] == 401
    eve = {"deviceId": "sec-eve", "chip": "BM1684"}
    assert client.request("POST", "/v1/register", "wrong-bootstrap", eve)[0] == 401


def test_revoked_credential_is_refused_at_once(gateway: BackgroundGateway, client: Client, devices: Devices) -> None:
    token = client.register(BOOTSTRAP, "sec-revoked")
    cred_id = devices.get("sec-revoked")["status"]["credentials"][0]["id"]
    path = "/v1/devices/sec-revoked/desired?wait=20&version=0"
    assert client.request("GET", "/v1/devices/sec-revoked/desired?version=0", token)[0] == 304
    # A long poll is in flight when the admin revokes the credential: it is answered 401 at once, not in 20 s.
    result: list[int] = []
    poll = threading.Thread(target=lambda: result.append(client.request("GET", path, token)[0]))
    poll.start()
    wait_for(lambda: gateway.gateway.metrics.longpolls._value.get() >= 1, 10, "the poll being held")
    revoked_at = time.monotonic()
    devices.patch_spec("sec-revoked", {"revokedCredentials": [cred_id]})
    poll.join(10)
    assert result == [401] and time.monotonic() - revoked_at < 3
    # And every request after it: status, blobs, rotate.
    assert client.request("GET", "/v1/devices/sec-revoked/desired?version=0", token)[0] == 401
    assert client.request("POST", "/v1/devices/sec-revoked/status", token, {})[0] == 401
    assert client.request("POST", "/v1/devices/sec-revoked/rotate", token, {})[0] == 401
    # The agent would register again with its bootstrap token: a revoked device does not come back by itself.
    status, _, body = client.request("POST", "/v1/register", BOOTSTRAP, {"deviceId": "sec-revoked", "chip": "BM1684"})
    assert status == 409 and json.loads(body)["error"] == "Revoked"


def test_rotation_keeps_an_offline_device_through_the_grace_period(
    gateway: BackgroundGateway, client: Client, devices: Devices
) -> None:
    old = client.register(BOOTSTRAP, "sec-rotate")
    status, _, body = client.request("POST", "/v1/devices/sec-rotate/rotate", old, {})
    assert status == 200
    doc = json.loads(body)
    new, until = doc["token"], doc["previousTokenValidUntil"]
    creds = devices.get("sec-rotate")["status"]["credentials"]
    assert len(creds) == 2 and creds[0]["notAfter"] == until and "notAfter" not in creds[1]
    # The box lost power before it stored the new token: it comes back with the old one, which still works, and
    # the gateway asks it to rotate again.
    assert client.request("GET", "/v1/devices/sec-rotate/desired?version=0", old)[0] == 304
    status, _, body = client.request("POST", "/v1/devices/sec-rotate/status", old, {"desiredVersion": 0})
    assert status == 200 and json.loads(body) == {"rotateCredential": True}
    status, _, body = client.request("POST", "/v1/devices/sec-rotate/status", new, {"desiredVersion": 0})
    assert status == 200 and json.loads(body) == {}
    # After the grace period only the new one works (the period is made to end now, through status).
    creds[0]["notAfter"] = "2000-01-01T00:00:00Z"
    devices.custom.patch_namespaced_custom_object_status(
        "bmfleet.io", "v1alpha1", devices.namespace, "edgedevices", "sec-rotate", {"status": {"credentials": creds}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for(
        lambda: client.request("GET", "/v1/devices/sec-rotate/desired?version=0", old)[0] == 401, 10, "old expires"
    )
    assert client.request("GET", "/v1/devices/sec-rotate/desired?version=0", new)[0] == 304


def test_agent_rotates_and_keeps_working(gateway: BackgroundGateway, devices: Devices, make_agent: Any) -> None:
    agent = make_agent("sec-agent-rotate")
    assert agent.run_once()
    first = agent.credential.token
    agent.rotate_requested = True
    assert agent.run_once() and agent.credential.token != first
    assert len(devices.get("sec-agent-rotate")["status"]["credentials"]) == 2
    assert agent.run_once()  # the new token works
