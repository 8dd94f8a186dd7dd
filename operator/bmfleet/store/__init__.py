"""bmfleet.store: content-addressed artifact stores (OCI registry, S3-compatible, filesystem/PVC).

`open_store` picks the backend a `StoreRef` names. Backends are imported lazily so that importing the package
(the worker, `bmfleet bmodel`) costs nothing for stores it does not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bmfleet.store.base import Blob, DigestMismatchError, Store, StoreError

if TYPE_CHECKING:
    from bmfleet.api.build import StoreRef

__all__ = ["Blob", "DigestMismatchError", "Store", "StoreError", "check_store_uri", "open_store"]


def open_store(
    ref: StoreRef,
    credentials: Mapping[str, object] | None = None,
    *,
    pvc_root: Path | None = None,
    ca_bundle: Path | None = None,
) -> Store:
    """The store a build's `spec.output.store` names. `credentials` is the decoded `credentialsSecret` data: a
    docker config (`.dockerconfigjson` or `auths`) or username/password for oci, AWS_* keys for s3. `pvc_root` is
    where the claims are mounted (pvc://<claim>/<prefix> is `<pvc_root>/<claim>/<prefix>`)."""
    if ref.type == "oci":
        from bmfleet.store.oci import OciStore

        return OciStore.from_uri(ref.uri, credentials, ca_bundle=ca_bundle)
    if ref.type == "s3":
        from bmfleet.store.s3 import S3Store

        return S3Store.from_uri(ref.uri, credentials, ca_bundle=ca_bundle)
    from bmfleet.store.fs import FileStore

    if not ref.uri.startswith("pvc://"):
        raise ValueError(f"a pvc store needs a pvc://<claim>/<prefix> URI, got {ref.uri[:80]!r}")
    if pvc_root is None:
        raise ValueError("a pvc store can only be opened where its claim is mounted (pvc_root)")
    claim_and_prefix = ref.uri.removeprefix("pvc://").strip("/")
    root = (pvc_root / claim_and_prefix).resolve()
    if not claim_and_prefix or not root.is_relative_to(pvc_root.resolve()):
        raise ValueError(f"pvc URI {ref.uri[:80]!r} leaves the mount root")
    return FileStore(root)


def check_store_uri(store_type: str, uri: str) -> None:
    """ValueError saying what is wrong with a store URI for its type, without opening anything (no network, no TLS
    context): what the controller can tell the user before any Job runs."""
    if store_type == "oci":
        from bmfleet.store.oci import parse_oci_uri

        parse_oci_uri(uri)
    elif store_type == "s3":
        from bmfleet.store.s3 import parse_s3_uri

        parse_s3_uri(uri)
    elif not uri.startswith("pvc://") or not uri.removeprefix("pvc://").split("/", 1)[0]:
        raise ValueError(f"a pvc store needs a pvc://<claim>/<prefix> URI, got {uri[:80]!r}")
