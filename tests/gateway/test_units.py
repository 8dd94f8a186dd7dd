"""The gateway's pure parts, without a cluster: HTTP parsing, Range, report sanitizing, the view's authentication,
the batcher's coalescing and offline sweep, the watch's re-list on 410, label checks, and the store allow-list."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from bmfleet.gateway import blobs, credentials, status
from bmfleet.gateway.http import HttpServer, Request, Response
from bmfleet.gateway.kube import GoneError
from bmfleet.gateway.metrics import GatewayMetrics
from bmfleet.gateway.view import REVOKED, BlobRef, View, format_time, parse_device, token_hash
from bmfleet.gateway.watch import Watcher

DIGEST = "sha256:" + "ab" * 32


def device(name: str = "d1", rv: int = 5, token: str = "tok", **spec: Any) -> dict[str, Any]:
    creds = [{"id": "c1", "sha256": token_hash(token), "issuedAt": "2025-01-01T00:00:00Z"}]
    return {"metadata": {"name": name, "resourceVersion": str(rv), "generation": 2},
            "spec": {"chip": "BM1684", **spec}, "status": {"credentials": creds}}  # fmt: skip


def test_parse_range() -> None:
    assert blobs.parse_range(None, 100) is None
    assert blobs.parse_range("bytes=10-", 100) == (10, 99)
    assert blobs.parse_range("bytes=10-19", 100) == (10, 19)
    assert blobs.parse_range("bytes=10-500", 100) == (10, 99)
    assert blobs.parse_range("bytes=-5", 100) == (95, 99)
    assert blobs.parse_range("bytes=100-", 100) == "unsatisfiable"
    assert blobs.parse_range("bytes=0-1,5-6", 100) is None  # multiple ranges: the whole blob
    assert blobs.parse_range("items=1-2", 100) is None


def test_request_parser_refuses_what_it_does_not_speak() -> None:
    req, keep = HttpServer._parse(b"GET /v1/x?wait=3&version=2 HTTP/1.1\r\nHost: a\r\nRange: bytes=1-\r\n\r\n", "p")
    assert (req.method, req.path, req.query, req.headers["range"], keep) == (
        "GET", "/v1/x", {"wait": "3", "version": "2"}, "bytes=1-", True,
    )  # fmt: skip
    _, keep = HttpServer._parse(b"GET / HTTP/1.0\r\n\r\n", "p")
    assert keep is False
    for bad in (
        b"GET /x\r\n\r\n",
        b"GET http://evil/ HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\n bad header\r\n\r\n",
    ):
        with pytest.raises(Exception, match=r"."):
            HttpServer._parse(bad, "p")


def test_server_answers_over_a_socket_and_keeps_alive() -> None:
    async def handler(req: Request) -> Response:
        return Response(200, req.body or req.path.encode())

    async def go() -> list[bytes]:
        server = HttpServer(handler)
        port = await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        writer.write(b"GET /b HTTP/1.1\r\nConnection: close\r\n\r\n")
        out = await reader.read()
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /c HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
        big = await reader.read()
        await server.close()
        return [out, big]

    out, big = asyncio.run(go())
    assert out.count(b"HTTP/1.1 200 OK") == 2 and b"hello" in out and out.endswith(b"/b")
    assert big.startswith(b"HTTP/1.1 413")


def test_sanitize_keeps_only_the_contract_fields() -> None:
    report = {
        "chip": "BM1684", "desiredVersion": 3, "lastError": "", "credentials": ["x"], "agentVersion": 7,
        "models": [
            {"name": "det", "state": "Active", "activeDigest": DIGEST, "bytesDownloaded": 10, "size": 10,
             "reason": "", "message": "", "rolloutId": "ns/r", "generation": 2, "previousDigest": None},
            {"name": "Bad Name", "state": "Active"},
            {"name": "cls", "state": "Exploded"},
        ],
    }  # fmt: skip
    assert status.sanitize(report) == {
        "chip": "BM1684", "desiredVersion": 3, "lastError": "",
        "models": [{"name": "det", "state": "Active", "activeDigest": DIGEST, "bytes": 10, "size": 10}],
    }  # fmt: skip
    assert status.sanitize("nope") == {} and status.sanitize({"desiredVersion": True}) == {}


def test_desired_document_and_converged() -> None:
    entry = {"name": "det", "action": "install", "digest": DIGEST, "size": 9, "chip": "BM1684",
             "uri": "pvc://c/p/blobs/sha256/" + "ab" * 32, "rollout": "r1", "generation": 4}  # fmt: skip
    d = parse_device(device(desired={"version": 7, "models": [entry]}), "ns")
    assert d.version == 7 and d.blobs == {DIGEST: BlobRef(DIGEST, entry["uri"], 9)}
    import json

    doc = json.loads(d.doc)
    assert doc["models"][0] == {"name": "det", "action": "install", "digest": DIGEST, "size": 9, "chip": "BM1684",
                                "generation": 4, "url": f"/v1/blobs/{DIGEST}", "rolloutId": "ns/r1"}  # fmt: skip
    active = {"desiredVersion": 7, "models": [{"name": "det", "state": "Active", "activeDigest": DIGEST}]}
    assert status.converged(d, active)[0] is True
    assert status.converged(d, {**active, "desiredVersion": 6})[1] == "Progressing"
    failed = {"desiredVersion": 7, "models": [{"name": "det", "state": "Failed", "reason": "ProbeFailed"}]}
    assert status.converged(d, failed)[1] == "Failed"


def test_view_authenticates_revokes_expires_and_never_goes_back() -> None:
    now = [1_000_000.0]
    view = View("ns", clock=lambda: now[0])
    view.replace([device(token="t1")], "5")
    dev_cred = view.authenticate("t1")
    assert not isinstance(dev_cred, str) and dev_cred is not None and dev_cred[0].name == "d1"
    assert view.authenticate("t2") is None
    view.apply("MODIFIED", device(rv=6, token="t1", revokedCredentials=["c1"]))
    assert view.authenticate("t1") == REVOKED
    view.apply("MODIFIED", device(rv=4, token="t1"))  # an older event: ignored
    assert view.authenticate("t1") == REVOKED
    obj = device(rv=7, token="t1")
    obj["status"]["credentials"][0]["notAfter"] = format_time(now[0] + 10)
    view.apply("MODIFIED", obj)
    assert view.authenticate("t1") not in (None, REVOKED)
    now[0] += 11
    assert view.authenticate("t1") == REVOKED
    view.apply("DELETED", device(rv=8))
    assert view.authenticate("t1") is None and "d1" not in view.devices


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.rv = 100

    def patch_status(self, name: str, patch: dict[str, Any], rv: str | None = None) -> dict[str, Any]:
        self.patches.append((name, patch))
        self.rv += 1
        obj = device(name, self.rv)
        obj["status"].update(patch)
        return obj


def test_batcher_coalesces_skips_no_ops_and_marks_offline() -> None:
    now = [1_000_000.0]
    kube = FakeKube()
    view = View("ns", clock=lambda: now[0])
    view.replace([device("d1", 5), device("d2", 5, token="x")], "5")
    b = status.StatusBatcher(kube, view, GatewayMetrics(), heartbeat=10, clock=lambda: now[0])  # type: ignore[arg-type]

    async def go() -> None:
        for n in range(50):  # one device, fifty reports between two flushes
            b.touch("d1")
            b.report("d1", {"desiredVersion": 0, "models": [{"name": "m", "state": "Downloading", "bytes": n}]})
        await b.flush()
        assert [p["models"][0]["bytes"] for _, p in kube.patches] == [49]
        b.report("d1", {"desiredVersion": 0, "models": [{"name": "m", "state": "Downloading", "bytes": 49}]})
        await b.flush()
        assert len(kube.patches) == 1  # the same snapshot again costs nothing
        now[0] += 31  # more than 3 heartbeats without contact
        b._last_sweep = 0
        await b.flush()
        online = {c["type"]: c["status"] for c in kube.patches[-1][1]["conditions"]}
        assert kube.patches[-1][0] == "d1" and online == {"Ready": "False", "Online": "False"}

    asyncio.run(go())
    assert b.reports == 51 and b.patches == 2


def test_watcher_lists_again_after_410() -> None:
    class Kube:
        lists = 0

        def list_devices(self) -> tuple[list[dict[str, Any]], str]:
            Kube.lists += 1
            return [device(rv=Kube.lists)], str(Kube.lists)

        def watch_devices(self, rv: str, timeout: int, holder: list[Any]) -> Any:
            if Kube.lists == 1:
                yield "MODIFIED", device(rv=1, token="new")
                raise GoneError("too old")
            watcher.stopping.set()
            yield from ()

    loop = asyncio.new_event_loop()
    view = View("ns")
    watcher = Watcher(Kube(), view, loop)  # type: ignore[arg-type]
    thread = threading.Thread(target=watcher._run)
    thread.start()
    thread.join(10)
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    assert Kube.lists == 2 and view.synced and view.devices["d1"].rv == 2


def test_label_and_id_checks() -> None:
    assert credentials.check_labels({"site": "plant-3", "example.com/tier": "a"}) == {
        "site": "plant-3", "example.com/tier": "a"
    }  # fmt: skip
    for bad in ({"bmfleet.io/canary": "x"}, {"kubernetes.io/os": "x"}, {"a b": "x"}, {"k": "-bad"}, ["x"]):
        with pytest.raises(credentials.RefusedError):
            credentials.check_labels(bad)
    token, cred = credentials.issue(0)
    assert len(token) >= 43 and cred.sha256 == token_hash(token) and token not in repr(cred)


def test_blob_source_serves_only_allowed_stores(tmp_path: Path) -> None:
    data = b"model bytes"
    import hashlib

    hexd = hashlib.sha256(data).hexdigest()
    (tmp_path / "ok" / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "ok" / "blobs" / "sha256" / hexd).write_bytes(data)
    (tmp_path / "bad" / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "bad" / "blobs" / "sha256" / hexd).write_bytes(b"tampered!!!")
    src = blobs.BlobSource([f"file://{tmp_path}/ok", f"file://{tmp_path}/bad"], tmp_path, tmp_path / "cache")

    async def get(uri: str) -> Any:
        try:
            return await src.local(BlobRef("sha256:" + hexd, uri, len(data)))
        except blobs.BlobError as e:
            return e.status

    assert asyncio.run(get(f"file://{tmp_path}/ok/blobs/sha256/{hexd}")).size == len(data)
    assert asyncio.run(get(f"file://{tmp_path}/bad/blobs/sha256/{hexd}")) == 502  # does not hash to its name
    assert asyncio.run(get(f"file://{tmp_path}/other/blobs/sha256/{hexd}")) == 404  # not an allowed store
    assert asyncio.run(get(f"file://{tmp_path}/ok/../bad/blobs/sha256/{hexd}")) == 404  # no walking out
    assert asyncio.run(get(f"file://{tmp_path}/ok/%2e%2e/bad/blobs/sha256/{hexd}")) == 404
    assert asyncio.run(get(f"http://x/blobs/sha256/{hexd}")) == 404


def test_batcher_writes_news_first_and_at_most_max_batch() -> None:
    now = [1_000_000.0]
    kube = FakeKube()
    view = View("ns", clock=lambda: now[0])
    fresh = format_time(now[0])
    objs = [device(f"d{i}", 5, token=f"t{i}") for i in range(6)]
    for obj in objs:
        obj["status"]["lastSeen"] = fresh
        obj["status"]["conditions"] = [
            {"type": "Ready", "status": "False", "reason": "Progressing", "lastTransitionTime": fresh},
            {"type": "Online", "status": "True", "reason": "Heartbeat", "lastTransitionTime": fresh},
        ]
    view.replace(objs, "5")
    b = status.StatusBatcher(kube, view, GatewayMetrics(), max_batch=2, clock=lambda: now[0])  # type: ignore[arg-type]
    now[0] += 130  # every device polled since: their lastSeen is due for a refresh
    for i in range(6):
        b.touch(f"d{i}")
        b.pending[f"d{i}"] = status._Pending(None)
    b.report("d5", {"desiredVersion": 0, "models": [{"name": "m", "state": "Active"}]})

    async def go() -> None:
        await b.flush()
        assert "d5" in {n for n, _ in kube.patches} and len(kube.patches) == 2  # the news first, then 1 refresh
        assert len(b.pending) == 4 and b._wake.is_set()  # the rest follow at once
        while b.pending:
            await b.flush()

    asyncio.run(go())
    assert sorted(n for n, _ in kube.patches) == [f"d{i}" for i in range(6)]
