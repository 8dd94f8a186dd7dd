"""The parts of the store that need no server: credentials, challenges, names, manifests, the factory, retries."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bmfleet.api.build import StoreRef
from bmfleet.store import DigestMismatchError, Store, StoreError, open_store
from bmfleet.store._http import TransientError, Transport, safe_url
from bmfleet.store.artifact import BMODEL_ARTIFACT_TYPE, MEDIA_BMODEL, TITLE, Descriptor, build_manifest, parse_manifest
from bmfleet.store.fs import FileStore
from bmfleet.store.oci import OciStore, parse_oci_uri
from bmfleet.store.oci_auth import credentials_for, parse_challenge


def test_dockerconfigjson_entry_is_picked_by_host() -> None:
    auth = base64.b64encode(b"robot:s3cret:with:colons").decode()
    secret = {".dockerconfigjson": json.dumps({"auths": {"https://reg.example:5000": {"auth": auth}, "other": {}}})}
    creds = credentials_for("reg.example:5000", secret)
    assert creds is not None and (creds.username, creds.password) == ("robot", "s3cret:with:colons")
    assert "s3cret" not in repr(creds)
    assert credentials_for("elsewhere.example", secret) is None


def test_identity_token_and_plain_username_password() -> None:
    creds = credentials_for("r.example", {"auths": {"r.example": {"identitytoken": "refresh-me"}}})
    assert creds is not None and creds.identity_token == "refresh-me"
    plain = credentials_for("any", {"username": "u", "password": "p"})
    assert plain is not None and (plain.username, plain.password) == ("u", "p")


def test_bearer_challenge_is_parsed() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }


def test_oci_uri_and_scheme_choice() -> None:
    assert parse_oci_uri("oci://harbor.example:8443/team/models/ssd300") == (
        "harbor.example:8443",
        "team/models/ssd300",
    )
    for bad in ("oci://host", "oci://host/UPPER", "oci://host/../x", "s3://b/k"):
        with pytest.raises(ValueError):
            parse_oci_uri(bad)
    assert OciStore("127.0.0.1:5000", "a/b").base == "http://127.0.0.1:5000/v2/a/b"
    assert OciStore("localhost:5000", "a", ca_bundle=None).base.startswith("http://")
    assert OciStore("registry.example", "a").base == "https://registry.example/v2/a"


def test_manifest_is_deterministic_and_refuses_duplicate_names() -> None:
    layer = Descriptor(MEDIA_BMODEL, "sha256:" + "a" * 64, 3, {TITLE: "net.bmodel"})
    assert build_manifest([layer], BMODEL_ARTIFACT_TYPE) == build_manifest([layer], BMODEL_ARTIFACT_TYPE)
    artifact_type, layers, _ = parse_manifest(build_manifest([layer], BMODEL_ARTIFACT_TYPE))
    assert (artifact_type, layers) == (BMODEL_ARTIFACT_TYPE, [layer])
    with pytest.raises(ValueError, match="same name"):
        build_manifest([layer, layer], BMODEL_ARTIFACT_TYPE)


def test_errors_show_urls_without_credentials_or_query() -> None:
    assert safe_url("https://user:pw@reg.example:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=d") == (
        "https://reg.example:5000/v2/a/blobs/uploads/x"
    )


def test_retries_are_bounded_with_growing_backoff() -> None:
    sleeps: list[float] = []
    transport = Transport(attempts=4, backoff=1.0, sleep=sleeps.append)
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("down")

    with pytest.raises(StoreError, match="gave up after 4 attempts"):
        transport.retry("push", flaky)
    assert calls == 4 and len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 2.0 <= sleeps[2] <= 4.0


def test_open_store_pvc_is_a_filestore_under_the_mount(tmp_path: Path) -> None:
    ref = StoreRef(type="pvc", uri="pvc://models/builds")
    store = open_store(ref, None, pvc_root=tmp_path)
    assert isinstance(store, FileStore) and isinstance(store, Store)
    assert store.root == (tmp_path / "models" / "builds").resolve()
    with pytest.raises(ValueError, match="leaves the mount root"):
        open_store(StoreRef(type="pvc", uri="pvc://../../etc"), None, pvc_root=tmp_path)
    with pytest.raises(ValueError, match="pvc_root"):
        open_store(ref, None)
    assert isinstance(open_store(StoreRef(type="oci", uri="oci://r.example/a"), None), OciStore)


def test_filestore_exists_and_fetch_verify(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    src = tmp_path / "a.bmodel"
    src.write_bytes(b"bmodel bytes")
    blob = store.put(src)
    assert store.exists(blob.digest) and not store.exists("0" * 64)
    assert store.fetch(blob.digest, tmp_path / "out" / "a.bmodel").read_bytes() == b"bmodel bytes"
    (store.root / blob.key).write_bytes(b"tampered")
    with pytest.raises(DigestMismatchError):
        store.fetch(blob.digest, tmp_path / "out" / "b.bmodel")
    assert not (tmp_path / "out" / "b.bmodel").exists()
    with pytest.raises(ValueError):
        store.exists("../../etc/passwd")


def test_blob_uris_round_trip_for_every_store_kind() -> None:
    from bmfleet.store.uris import blob_uri, split_blob_uri

    hexdigest = "d" * 64
    cases = {
        "oci://reg.example:5000/models/x": f"oci://reg.example:5000/models/x@sha256:{hexdigest}",
        "pvc://artifacts/builds/": f"pvc://artifacts/builds/blobs/sha256/{hexdigest}",
        "file:///srv/store": f"file:///srv/store/blobs/sha256/{hexdigest}",
        "s3://bucket-a/p?endpoint=https://s3.example": f"s3://bucket-a/p/blobs/sha256/{hexdigest}?endpoint=https://s3.example",
    }
    for store, blob in cases.items():
        assert blob_uri(store, f"sha256:{hexdigest}") == blob
        assert split_blob_uri(blob) == (store.replace("builds/", "builds"), hexdigest)
    for bad in ("oci://reg.example/models/x:v1", "pvc://artifacts/builds/model.bmodel", "s3://b/blobs/sha256/zz"):
        with pytest.raises(ValueError, match="names no blob"):
            split_blob_uri(bad)


def test_store_uris_are_checked_without_opening_anything() -> None:
    from bmfleet.store import check_store_uri

    check_store_uri("oci", "oci://127.0.0.1:5000/bmfleet/blobs")
    check_store_uri("s3", "s3://bucket-a/prefix?endpoint=http://127.0.0.1:9000")
    check_store_uri("pvc", "pvc://claim/prefix")
    for kind, uri in (("oci", "oci://host"), ("s3", "s3://x/p"), ("s3", "oci://h/r"), ("pvc", "pvc:///p")):
        with pytest.raises(ValueError):
            check_store_uri(kind, uri)
