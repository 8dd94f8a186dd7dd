"""The workers against real stores: compile puts its bmodel into a `crane registry serve` repository, combine
fetches stages by digest from versitygw (S3) with keys from a Secret-style directory and puts the result back,
publish reads from S3 and pushes to the registry, and a TLS registry with htpasswd works from `.dockerconfigjson`
plus `ca.crt` in the same directory. Credentials never reach a result record."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from bmfleet.api.digests import sha256_file
from bmfleet.bmodel import read_model, synth
from bmfleet.store.oci import OciStore
from bmfleet.store.s3 import S3Store
from bmfleet.worker import combine, compile, publish
from bmfleet.worker.storage import open_step_store
from tests.store.servers import S3_ACCESS, S3_BUCKET, S3_SECRET, USERS, Server

DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "fake_bmnetu.py"


def _secret_dir(path: Path, data: dict[str, str]) -> str:
    """A Secret as the kubelet mounts it: one file per key (and its own `..data` entry, to be ignored)."""
    path.mkdir()
    (path / "..data").mkdir()
    for key, value in data.items():
        (path / key).write_text(value)
    return str(path)


def _record(path: Path) -> dict[str, object]:
    out: dict[str, object] = json.loads(path.read_text())
    return out


def test_compile_puts_the_bmodel_into_the_registry(
    crane: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bmnetu"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {DOUBLE} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("BMFLEET_BMNETU", str(script))
    proto, umodel = tmp_path / "net.prototxt", tmp_path / "net.umodel"
    proto.write_text("name: 'ssd'")
    umodel.write_bytes(b"weights")
    store = f"oci://127.0.0.1:{crane.port}/bmfleet/compiled"
    args = [
        "--toolchain=bmnetu", "--model-format=umodel", f"--model=file://{proto}", f"--weights=file://{umodel}",
        "--chip=BM1684", "--precision=INT8", "--shapes=[1,3,300,300]", f"--outdir={tmp_path / 'out'}",
        f"--result={tmp_path / 'result.json'}", f"--store={store}",
    ]  # fmt: skip
    assert compile.main(args) == 0
    record = _record(tmp_path / "result.json")
    digest = str(record["digest"]).removeprefix("sha256:")
    assert record["uri"] == f"{store}@sha256:{digest}"
    got = OciStore(f"127.0.0.1:{crane.port}", "bmfleet/compiled").fetch(digest, tmp_path / "fetched")
    assert got.read_bytes() == (tmp_path / "out" / "compilation.bmodel").read_bytes()


def test_combine_and_publish_through_s3_with_keys_from_a_secret(
    s3: tuple[Server, Path], crane: Server, tmp_path: Path
) -> None:
    server, _ = s3
    endpoint = f"http://127.0.0.1:{server.port}"
    # The endpoint may come from the Secret as well as from the URI.
    keys = {"AWS_ACCESS_KEY_ID": S3_ACCESS, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_ENDPOINT_URL": endpoint}
    secret = _secret_dir(tmp_path / "secret", keys)
    uri = f"s3://{S3_BUCKET}/steps"
    store = open_step_store(uri, secret)
    stages = []
    for batch in (1, 4):
        (tmp_path / f"b{batch}.bmodel").write_bytes(synth.classifier("tiny", batch, chip="BM1684"))
        blob, blob_uri = store.put(tmp_path / f"b{batch}.bmodel")
        assert blob_uri == f"{uri}/blobs/sha256/{blob.digest}"
        stages.append(blob_uri)
    out = tmp_path / "combine"
    args = [f"--inputs={stages[1]},{stages[0]}", f"--store={uri}", f"--store-credentials={secret}",
            "--name=tiny.bmodel", f"--outdir={out}", f"--result={tmp_path / 'combine.json'}"]  # fmt: skip
    assert combine.main(args) == 0, (tmp_path / "combine.json").read_text()
    record = _record(tmp_path / "combine.json")
    digest = str(record["digest"]).removeprefix("sha256:")
    assert record["uri"] == f"{uri}/blobs/sha256/{digest}" and record["stages"] == 2
    assert S3_SECRET not in json.dumps(record) and S3_ACCESS not in json.dumps(record)
    anonymous = S3Store(S3_BUCKET, "steps", endpoint=endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET)
    (net,) = read_model(anonymous.fetch(digest, tmp_path / "combined.bmodel")).nets
    assert [s.inputs[0].shape[0] for s in net.stages] == [4, 1]

    registry = f"oci://127.0.0.1:{crane.port}/bmfleet/published"
    args = [f"--registry={registry}", f"--bmodel={record['uri']}", f"--store={uri}", f"--store-credentials={secret}",
            "--provenance={}", f"--outdir={tmp_path / 'publish'}", f"--result={tmp_path / 'publish.json'}"]  # fmt: skip
    assert publish.main(args) == 0, (tmp_path / "publish.json").read_text()
    assert _record(tmp_path / "publish.json")["uri"] == f"{registry}@sha256:{digest}"


def test_missing_keys_fail_as_a_store_failure_without_leaking(s3: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = s3
    blob = tmp_path / "b.bmodel"
    blob.write_bytes(synth.classifier("tiny", 1, chip="BM1684"))
    uri = f"s3://{S3_BUCKET}/denied?endpoint=http://127.0.0.1:{server.port}"
    secret = _secret_dir(tmp_path / "secret", {"AWS_ACCESS_KEY_ID": S3_ACCESS, "AWS_SECRET_ACCESS_KEY": "wrong-key"})
    args = [f"--inputs={uri.replace('?', f'/blobs/sha256/{sha256_file(blob)}?')}", f"--store={uri}",
            f"--store-credentials={secret}", "--name=x.bmodel", f"--outdir={tmp_path / 'o'}",
            f"--result={tmp_path / 'r.json'}"]  # fmt: skip
    assert combine.main(args) == combine.EXIT_FAILED
    record = _record(tmp_path / "r.json")
    assert record["reason"] == "StoreFailed" and "wrong-key" not in json.dumps(record)


def test_tls_registry_with_dockerconfigjson_and_ca_from_the_secret(
    basic_auth: Server, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    registry = f"127.0.0.1:{basic_auth.port}"
    auth = base64.b64encode(f"builder:{USERS['builder']}".encode()).decode()
    config = json.dumps({"auths": {registry: {"auth": auth}}})
    secret = _secret_dir(tmp_path / "secret", {".dockerconfigjson": config, "ca.crt": tls[0].read_text()})
    store = open_step_store(f"oci://{registry}/bmfleet/private", secret)
    src = tmp_path / "blob"
    src.write_bytes(b"behind a private CA")
    blob, uri = store.put(src)
    assert uri == f"oci://{registry}/bmfleet/private@sha256:{blob.digest}"
    assert store.local(uri, tmp_path / "back").read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match="not in the build's store"):
        store.local(f"oci://{registry}/bmfleet/other@sha256:{blob.digest}", tmp_path / "x")
