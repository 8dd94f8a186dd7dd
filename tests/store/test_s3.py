"""S3Store (stdlib SigV4) against a real S3-compatible server: versitygw with its posix backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bmfleet.api.build import StoreRef
from bmfleet.store import DigestMismatchError, StoreError, open_store
from bmfleet.store.s3 import S3Store
from tests.store.servers import S3_ACCESS, S3_BUCKET, S3_SECRET, CuttingProxy, Server

pytestmark = pytest.mark.integration


def store(port: int, prefix: str = "builds", secret: str = S3_SECRET) -> S3Store:
    return S3Store(S3_BUCKET, prefix, endpoint=f"http://127.0.0.1:{port}", access_key=S3_ACCESS, secret_key=secret)


def test_put_exists_fetch_by_digest_layout(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, data = s3
    src = tmp_path / "net.bmodel"
    src.write_bytes(os.urandom(200_000))
    s = store(server.port, "team-a/builds")
    blob = s.put(src)
    assert not store(server.port, "team-b").exists(blob.digest)
    assert s.exists(blob.digest)
    on_disk = data / S3_BUCKET / "team-a" / "builds" / "blobs" / "sha256" / blob.digest
    assert on_disk.read_bytes() == src.read_bytes()
    assert s.fetch(blob.digest, tmp_path / "out" / "net.bmodel").read_bytes() == src.read_bytes()


def test_second_put_of_same_content_does_not_rewrite(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, data = s3
    src = tmp_path / "same.bmodel"
    src.write_bytes(os.urandom(10_000))
    s = store(server.port, "dedupe")
    blob = s.put(src)
    on_disk = data / S3_BUCKET / "dedupe" / "blobs" / "sha256" / blob.digest
    os.utime(on_disk, (1_000_000, 1_000_000))
    s.put(src)
    assert on_disk.stat().st_mtime == 1_000_000


def test_wrong_secret_is_refused_without_echoing_it(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = s3
    src = tmp_path / "x.bmodel"
    src.write_bytes(b"x" * 100)
    wrong = "wrong-secret-must-not-appear"
    with pytest.raises(StoreError) as err:
        store(server.port, secret=wrong).put(src)
    assert "403" in str(err.value)
    assert wrong not in str(err.value) and S3_ACCESS not in str(err.value)


def test_fetch_of_missing_blob_fails_and_leaves_nothing(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = s3
    with pytest.raises(StoreError, match="404"):
        store(server.port).fetch("ab" * 32, tmp_path / "out" / "missing.bmodel")
    assert list((tmp_path / "out").iterdir()) == []


def test_download_resumes_after_a_dropped_connection(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = s3
    src = tmp_path / "big.bmodel"
    src.write_bytes(os.urandom(2_000_000))
    blob = store(server.port, "resume").put(src)
    proxy = CuttingProxy(server.port)
    try:
        proxy.cut_after(700_000)
        # the signed Host is the proxy's: the signature covers what the client sends, wherever it goes
        out = store(proxy.port, "resume").fetch(blob.digest, tmp_path / "out.bmodel")
    finally:
        proxy.close()
    assert proxy.cuts == 1 and out.read_bytes() == src.read_bytes()
    assert any("range: bytes=" in r.lower() for r in proxy.requests)


def test_open_store_dispatches_s3_with_endpoint_and_keys_from_the_secret(
    s3: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = s3
    ref = StoreRef(type="s3", uri=f"s3://{S3_BUCKET}/via-factory?region=us-east-1")
    secret = {"AWS_ACCESS_KEY_ID": S3_ACCESS, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    secret["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{server.port}"
    s = open_store(ref, secret)
    assert isinstance(s, S3Store)
    src = tmp_path / "f.bmodel"
    src.write_bytes(b"factory" * 100)
    assert s.exists(s.put(src).digest)


def test_tampered_object_is_refused(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, data = s3
    src = tmp_path / "t.bmodel"
    src.write_bytes(b"genuine" * 1000)
    blob = store(server.port, "tamper").put(src)
    (data / S3_BUCKET / "tamper" / "blobs" / "sha256" / blob.digest).write_bytes(b"evil!!!" * 1000)
    with pytest.raises(DigestMismatchError):
        store(server.port, "tamper").fetch(blob.digest, tmp_path / "out" / "t.bmodel")
    assert list((tmp_path / "out").iterdir()) == []
