"""`bmfleet worker compile` end to end as a process would run it, with the bmnetu TEST DOUBLE standing in
for the SDK's non-public compiler (the real-compiler path is covered by the TPU-MLIR toolchain tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bmfleet.api.digests import sha256_file
from bmfleet.store.fs import FileStore
from bmfleet.worker import compile as worker
from bmfleet.worker import storage

DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "fake_bmnetu.py"


@pytest.fixture
def fake_bmnetu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "bmnetu"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {DOUBLE} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("BMFLEET_BMNETU", str(script))
    return script


def _args(tmp_path: Path, **extra: str) -> list[str]:
    proto, umodel = tmp_path / "net.prototxt", tmp_path / "net.umodel"
    proto.write_text("name: 'ssd'")
    umodel.write_bytes(b"weights")
    args = {
        "toolchain": "bmnetu",
        "model-format": "umodel",
        "model": f"file://{proto}",
        "weights": f"file://{umodel}",
        "chip": "BM1684",
        "precision": "INT8",
        "shapes": "[1,3,300,300]",
        "outdir": str(tmp_path / "out"),
        "result": str(tmp_path / "result.json"),
    } | extra
    return [f"--{k}={v}" for k, v in args.items()]


def test_compiles_stores_and_reports(tmp_path, fake_bmnetu, monkeypatch):
    monkeypatch.setattr(storage, "STORE_DIR", str(tmp_path / "store"))
    code = worker.main(_args(tmp_path, store="pvc://artifacts/builds"))
    record = json.loads((tmp_path / "result.json").read_text())
    assert code == 0, record
    bmodel = tmp_path / "out" / "compilation.bmodel"
    assert record["state"] == "Succeeded" and record["digest"] == f"sha256:{sha256_file(bmodel)}"
    assert record["size"] == bmodel.stat().st_size and record["toolchain"].startswith("bmnetu ")
    key = record["uri"].removeprefix("pvc://artifacts/builds/")
    assert FileStore(tmp_path / "store" / "artifacts" / "builds").path(key).read_bytes() == bmodel.read_bytes()


def test_toolchain_failure_is_classified(tmp_path, fake_bmnetu, monkeypatch):
    monkeypatch.setenv("FAKE_BMNETU_FAIL", "unsupported")
    code = worker.main(_args(tmp_path))
    record = json.loads((tmp_path / "result.json").read_text())
    assert code == worker.EXIT_BAD_INPUT
    assert record["state"] == "Failed" and record["reason"] == "UnsupportedOperator"


def test_missing_input_and_wrong_digest_are_bad_input(tmp_path, fake_bmnetu):
    code = worker.main(_args(tmp_path, model="file:///nonexistent/net.prototxt"))
    record = json.loads((tmp_path / "result.json").read_text())
    assert code == worker.EXIT_BAD_INPUT and record["reason"] == "BadInput" and "not found" in record["message"]
    code = worker.main(_args(tmp_path, **{"model-sha256": "0" * 64}))
    record = json.loads((tmp_path / "result.json").read_text())
    assert code == worker.EXIT_BAD_INPUT and "does not match the expected" in record["message"]


def test_store_is_content_addressed_and_idempotent(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 100)
    store = FileStore(tmp_path / "s")
    first, second = store.put(src), store.put(src)
    assert first == second and first.size == 100 and first.key == f"blobs/sha256/{first.digest}"
    store.remember("key1", first.digest)
    assert store.lookup("key1") == first and store.lookup("missing") is None
    with pytest.raises(ValueError, match="outside the store"):
        store.path("../../etc/passwd")


def test_http_inputs_are_downloaded_and_checked(tmp_path):
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bmfleet.worker.inputs import InputError, resolve

    payload = b"model bytes" * 100

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/net.onnx":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        path = resolve(f"{base}/net.onnx", tmp_path, hashlib.sha256(payload).hexdigest())
        assert path.read_bytes() == payload
        with pytest.raises(InputError, match="download failed"):
            resolve(f"{base}/missing.onnx", tmp_path)
        with pytest.raises(InputError, match="does not match"):
            resolve(f"{base}/net.onnx", tmp_path, "0" * 64)
        with pytest.raises(InputError, match="need the artifact store"):
            resolve("oci://registry.local/m:1", tmp_path)
    finally:
        server.shutdown()
