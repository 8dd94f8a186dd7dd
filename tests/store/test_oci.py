"""OciStore against a real registry (`crane registry serve`) and interop both ways with the oras CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bmfleet.store import DigestMismatchError
from bmfleet.store.artifact import (
    BMODEL_ARTIFACT_TYPE,
    MEDIA_BMODEL,
    MEDIA_GATE_REPORT,
    MEDIA_GATE_RESULT,
    MEDIA_PROVENANCE,
    TITLE,
    ArtifactFile,
    Descriptor,
    build_manifest,
)
from bmfleet.store.oci import OciStore
from tests.store.servers import CuttingProxy, Server

pytestmark = pytest.mark.integration
Oras = Callable[..., subprocess.CompletedProcess[str]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact_files(directory: Path, bmodel_size: int = 300_000) -> list[ArtifactFile]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ssd300.bmodel").write_bytes(os.urandom(bmodel_size))
    (directory / "report.html").write_text("<html><body>cosine 0.998</body></html>")
    (directory / "gate-result.json").write_text(json.dumps({"passed": True, "cosine": 0.998}))
    (directory / "provenance.json").write_text(json.dumps({"inputs": {"model": "sha256:" + "0" * 64}}))
    return [
        ArtifactFile(directory / "ssd300.bmodel", MEDIA_BMODEL),
        ArtifactFile(directory / "report.html", MEDIA_GATE_REPORT),
        ArtifactFile(directory / "gate-result.json", MEDIA_GATE_RESULT),
        ArtifactFile(directory / "provenance.json", MEDIA_PROVENANCE),
    ]


def repo() -> str:
    return f"bmfleet/test-{uuid.uuid4().hex[:8]}"


def test_blob_put_exists_fetch_and_dedupe(crane: Server, tmp_path: Path) -> None:
    events: list[tuple[str, str, int]] = []
    store = OciStore(f"127.0.0.1:{crane.port}", repo(), progress=lambda *e: events.append(e))
    src = tmp_path / "a.bmodel"
    src.write_bytes(os.urandom(50_000))
    assert not store.exists(sha256(src))
    blob = store.put(src)
    assert (blob.digest, blob.size, blob.key) == (sha256(src), 50_000, f"blobs/sha256/{sha256(src)}")
    assert store.exists(blob.digest)
    assert store.fetch(blob.digest, tmp_path / "out" / "b.bmodel").read_bytes() == src.read_bytes()
    store.put(src)
    assert [e[0] for e in events] == ["blob-pushed", "blob-exists"]


def test_artifact_is_pulled_by_oras_with_names_and_type(crane: Server, oras: Oras, tmp_path: Path) -> None:
    name = repo()
    files = artifact_files(tmp_path / "in")
    store = OciStore(f"127.0.0.1:{crane.port}", name)
    desc = store.push_artifact(files, tag="v1", annotations={"io.bmfleet.build": "ssd300"})
    assert desc.artifact_type == BMODEL_ARTIFACT_TYPE
    assert store.resolve("v1") == desc.digest

    ref = f"127.0.0.1:{crane.port}/{name}@{desc.digest}"
    oras("pull", "--plain-http", ref, "-o", str(tmp_path / "oras"))
    pulled = sorted(p.name for p in (tmp_path / "oras").iterdir())
    assert pulled == sorted(f.path.name for f in files)
    for f in files:
        assert sha256(tmp_path / "oras" / f.path.name) == sha256(f.path)

    manifest = json.loads(oras("manifest", "fetch", "--plain-http", ref).stdout)
    assert manifest["artifactType"] == BMODEL_ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [f.media_type for f in files]
    assert manifest["annotations"] == {"io.bmfleet.build": "ssd300"}


def test_pushing_the_same_artifact_twice_uploads_nothing_and_gives_the_same_digest(
    crane: Server, tmp_path: Path
) -> None:
    events: list[tuple[str, str, int]] = []
    store = OciStore(f"127.0.0.1:{crane.port}", repo(), progress=lambda *e: events.append(e))
    files = artifact_files(tmp_path)
    first = store.push_artifact(files)
    events.clear()
    assert store.push_artifact(files).digest == first.digest
    assert {e[0] for e in events} == {"blob-exists"} and len(events) == 5  # empty config + four files


def test_we_pull_what_oras_pushed(crane: Server, oras: Oras, tmp_path: Path) -> None:
    name = repo()
    (tmp_path / "net.bmodel").write_bytes(os.urandom(10_000))
    (tmp_path / "provenance.json").write_text("{}")
    os.chdir(tmp_path)  # oras names layers by the path it was given
    oras(
        "push", "--plain-http", f"127.0.0.1:{crane.port}/{name}:rc1", "--artifact-type", BMODEL_ARTIFACT_TYPE,
        f"net.bmodel:{MEDIA_BMODEL}", f"provenance.json:{MEDIA_PROVENANCE}",
    )  # fmt: skip
    pulled = OciStore(f"127.0.0.1:{crane.port}", name).pull_artifact("rc1", tmp_path / "out")
    assert pulled.artifact_type == BMODEL_ARTIFACT_TYPE
    assert sorted(pulled.files) == ["net.bmodel", "provenance.json"]
    assert pulled.files["net.bmodel"].read_bytes() == (tmp_path / "net.bmodel").read_bytes()


def test_chunked_upload_round_trips(crane: Server, oras: Oras, tmp_path: Path) -> None:
    events: list[tuple[str, str, int]] = []
    name = repo()
    store = OciStore(f"127.0.0.1:{crane.port}", name, chunk_size=64 * 1024, progress=lambda *e: events.append(e))
    files = artifact_files(tmp_path / "in", bmodel_size=200_000)
    desc = store.push_artifact(files)
    assert [e[2] for e in events if e[0] == "chunk"] == [65536, 131072, 196608, 200_000]
    oras("pull", "--plain-http", f"127.0.0.1:{crane.port}/{name}@{desc.digest}", "-o", str(tmp_path / "out"))
    assert sha256(tmp_path / "out" / "ssd300.bmodel") == sha256(files[0].path)


def test_registry_restarted_mid_push_the_push_completes(crane_fresh: Server, oras: Oras, tmp_path: Path) -> None:
    """The registry dies after the first chunk of the bmodel (its upload session is lost with it) and comes back
    on the same port; the client backs off, starts that blob again and finishes the artifact."""
    events: list[tuple[str, str, int]] = []
    restart = threading.Timer(1.0, crane_fresh.start)

    def progress(event: str, digest: str, done: int) -> None:
        events.append((event, digest, done))
        if event == "chunk" and crane_fresh.starts == 1:
            crane_fresh.stop()
            restart.start()

    name = repo()
    store = OciStore(f"127.0.0.1:{crane_fresh.port}", name, chunk_size=100_000, progress=progress)
    files = artifact_files(tmp_path / "in")
    try:
        desc = store.push_artifact(files, tag="v1")
    finally:
        if restart.is_alive():
            restart.join()  # then the fixture stops what it started; no registry outlives the test
    assert crane_fresh.starts == 2, "the registry was not restarted: the test did not exercise the fault"
    chunks = [e[2] for e in events if e[0] == "chunk"]
    assert chunks == [100_000, 100_000, 200_000, 300_000]  # the lost session's chunk was sent again
    oras("pull", "--plain-http", f"127.0.0.1:{crane_fresh.port}/{name}:v1", "-o", str(tmp_path / "out"))
    assert {p.name: sha256(p) for p in (tmp_path / "out").iterdir()} == {f.path.name: sha256(f.path) for f in files}
    assert store.resolve("v1") == desc.digest


def test_download_resumes_with_range_after_a_dropped_connection(crane: Server, tmp_path: Path) -> None:
    name = repo()
    src = tmp_path / "big.bmodel"
    src.write_bytes(os.urandom(3_000_000))
    blob = OciStore(f"127.0.0.1:{crane.port}", name).put(src)
    proxy = CuttingProxy(crane.port)
    try:
        proxy.cut_after(1_000_000)
        out = OciStore(f"127.0.0.1:{proxy.port}", name).fetch(blob.digest, tmp_path / "out.bmodel")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert out.read_bytes() == src.read_bytes()
    assert any("range: bytes=" in r.lower() and r.startswith("GET") for r in proxy.requests), proxy.requests


def test_wrong_content_is_refused_and_not_written(crane: Server, tmp_path: Path) -> None:
    name = repo()
    src = tmp_path / "a.bmodel"
    src.write_bytes(b"the real bytes" * 1000)
    blob = OciStore(f"127.0.0.1:{crane.port}", name).put(src)
    proxy = CuttingProxy(crane.port)
    try:
        proxy.corrupt_next_body()
        with pytest.raises(DigestMismatchError):
            OciStore(f"127.0.0.1:{proxy.port}", name).fetch(blob.digest, tmp_path / "out" / "a.bmodel")
    finally:
        proxy.close()
    assert list((tmp_path / "out").iterdir()) == []


def test_pull_refuses_a_layer_title_that_leaves_the_directory(crane: Server, tmp_path: Path) -> None:
    store = OciStore(f"127.0.0.1:{crane.port}", repo())
    evil = store.push_blob(b"#!/bin/sh\n")
    store.push_blob(b"{}")
    layer = Descriptor(MEDIA_BMODEL, evil.digest, evil.size, {TITLE: "../escaped.sh"})
    desc = store.push_manifest(build_manifest([layer], BMODEL_ARTIFACT_TYPE))
    with pytest.raises(ValueError, match="unsafe artifact file name"):
        store.pull_artifact(desc.digest, tmp_path / "out")
    assert not (tmp_path / "escaped.sh").exists()
