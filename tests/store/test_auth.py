"""Auth and TLS against a real registry that has them (CNCF distribution): Bearer tokens from a token server,
htpasswd Basic, a private CA. `crane registry serve` has no auth, hence this second registry."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bmfleet.api.build import StoreRef
from bmfleet.store import StoreError, open_store
from bmfleet.store.oci import OciStore
from bmfleet.store.oci_auth import RegistryCredentials
from tests.store.auth_servers import SERVICE, TokenServer
from tests.store.servers import USERS, CuttingProxy, Server
from tests.store.test_oci import artifact_files, sha256

pytestmark = pytest.mark.integration
TLS = tuple[Path, Path, Path]


def creds(user: str, password: str | None = None) -> RegistryCredentials:
    return RegistryCredentials(username=user, password=password if password is not None else USERS[user])


def test_token_flow_push_and_pull_with_one_token_per_scope(
    token_auth: tuple[Server, TokenServer], tls: TLS, tmp_path: Path
) -> None:
    server, tokens = token_auth
    name = f"bmfleet/tok-{uuid.uuid4().hex[:8]}"
    store = OciStore(f"127.0.0.1:{server.port}", name, credentials=creds("builder"), ca_bundle=tls[0])
    before = len(tokens.requests)
    files = artifact_files(tmp_path / "in")
    desc = store.push_artifact(files, tag="v1")
    pulled = store.pull_artifact("v1", tmp_path / "out")
    assert pulled.digest == desc.digest
    assert sha256(pulled.files["ssd300.bmodel"]) == sha256(files[0].path)
    asked = tokens.requests[before:]
    assert {r["scope"] for r in asked} == {f"repository:{name}:pull", f"repository:{name}:pull,push"}
    assert len(asked) == 2, asked  # cached per scope across all blobs and the manifest
    assert all(r["service"] == SERVICE for r in asked)


def test_reader_can_pull_but_not_push(token_auth: tuple[Server, TokenServer], tls: TLS, tmp_path: Path) -> None:
    server, _ = token_auth
    name = f"bmfleet/ro-{uuid.uuid4().hex[:8]}"
    registry = f"127.0.0.1:{server.port}"
    blob = OciStore(registry, name, credentials=creds("builder"), ca_bundle=tls[0]).push_blob(b"pullable")
    reader = OciStore(registry, name, credentials=creds("reader"), ca_bundle=tls[0])
    assert reader.exists(blob.digest)
    with pytest.raises(StoreError, match="unauthorized"):
        reader.push_blob(b"not allowed")


@pytest.mark.parametrize("who", [None, "wrong-password-must-not-appear"])
def test_missing_or_wrong_credentials_fail_without_leaking(
    token_auth: tuple[Server, TokenServer], tls: TLS, who: str | None
) -> None:
    server, _ = token_auth
    credentials = creds("builder", who) if who else None
    store = OciStore(f"127.0.0.1:{server.port}", "bmfleet/denied", credentials=credentials, ca_bundle=tls[0])
    with pytest.raises(StoreError) as err:
        store.push_blob(b"x")
    assert "refused" in str(err.value) or "unauthorized" in str(err.value)
    assert "must-not-appear" not in str(err.value) and "Basic" not in str(err.value)
    assert "must-not-appear" not in repr(credentials)


def test_dockerconfigjson_secret_through_open_store(token_auth: tuple[Server, TokenServer], tls: TLS) -> None:
    server, _ = token_auth
    registry = f"127.0.0.1:{server.port}"
    auth = base64.b64encode(f"builder:{USERS['builder']}".encode()).decode()
    secret = {".dockerconfigjson": json.dumps({"auths": {f"https://{registry}": {"auth": auth}}})}
    store = open_store(StoreRef(type="oci", uri=f"oci://{registry}/bmfleet/cfg"), secret, ca_bundle=tls[0])
    blob = store.put(Path(__file__))
    assert store.exists(blob.digest)


def test_untrusted_certificate_fails_fast_without_retrying(token_auth: tuple[Server, TokenServer]) -> None:
    server, _ = token_auth
    store = OciStore(f"127.0.0.1:{server.port}", "bmfleet/tls", plain_http=False)
    with pytest.raises(StoreError, match="TLS verification failed") as err:
        store.exists("0" * 64)
    assert "gave up" not in str(err.value)


def test_htpasswd_basic_auth(basic_auth: Server, tls: TLS, tmp_path: Path) -> None:
    registry = f"127.0.0.1:{basic_auth.port}"
    src = tmp_path / "b.bmodel"
    src.write_bytes(os.urandom(20_000))
    store = OciStore(registry, "bmfleet/basic", credentials=creds("builder"), ca_bundle=tls[0])
    blob = store.put(src)
    assert store.fetch(blob.digest, tmp_path / "out.bmodel").read_bytes() == src.read_bytes()
    wrong = OciStore(registry, "bmfleet/basic", credentials=creds("builder", "nope-must-not-appear"), ca_bundle=tls[0])
    with pytest.raises(StoreError, match="unauthorized") as err:
        wrong.exists(blob.digest)
    assert "must-not-appear" not in str(err.value)


def test_oras_pulls_our_artifact_from_the_authenticated_tls_registry(
    token_auth: tuple[Server, TokenServer],
    tls: TLS,
    oras: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    server, _ = token_auth
    ref_base = f"127.0.0.1:{server.port}/bmfleet/oras-auth"
    store = OciStore(f"127.0.0.1:{server.port}", "bmfleet/oras-auth", credentials=creds("builder"), ca_bundle=tls[0])
    files = artifact_files(tmp_path / "in")
    desc = store.push_artifact(files)
    oras(
        "pull", "--ca-file", str(tls[0]), "-u", "reader", "-p", USERS["reader"],
        f"{ref_base}@{desc.digest}", "-o", str(tmp_path / "out"),
    )  # fmt: skip
    assert sha256(tmp_path / "out" / "provenance.json") == sha256(files[3].path)


def test_redirect_to_object_storage_drops_the_registry_credentials(
    redirecting_registry: tuple[Server, CuttingProxy], tls: TLS, tmp_path: Path
) -> None:
    server, s3_proxy = redirecting_registry
    store = OciStore(f"127.0.0.1:{server.port}", "bmfleet/redirect", credentials=creds("builder"), ca_bundle=tls[0])
    src = tmp_path / "r.bmodel"
    src.write_bytes(os.urandom(100_000))
    blob = store.put(src)
    seen = len(s3_proxy.requests)
    assert store.fetch(blob.digest, tmp_path / "out.bmodel").read_bytes() == src.read_bytes()
    presigned = [r for r in s3_proxy.requests[seen:] if r.startswith("GET") and "X-Amz-Signature=" in r]
    assert presigned, "the registry did not redirect the blob GET to S3"
    assert all("authorization:" not in r.lower() for r in presigned)
