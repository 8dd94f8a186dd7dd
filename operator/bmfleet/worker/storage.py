"""The build's artifact store as a step sees it: `--store` (pvc://, file://, oci://, s3://) and, where the
credentials Secret is mounted, `--store-credentials` (a Secret volume: docker config or AWS_* keys, optional
`ca.crt`). Blobs are named by `blob_uri`, so status, compile cache and gateway agree on where a blob is."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bmfleet.api.build import StoreRef
from bmfleet.pipeline.pods import STORE_DIR
from bmfleet.store import Blob, Store, open_store
from bmfleet.store.base import blob_key
from bmfleet.store.fs import FileStore
from bmfleet.store.uris import blob_uri, load_credentials, normal_store_uri, split_blob_uri

CA_KEY = "ca.crt"  # a key of the credentials Secret: the CA bundle of a store with a private CA


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, help="pvc://<claim>/<prefix>, file:///dir, oci://host/repo, s3://b/p")
    p.add_argument("--store-credentials", help="the mounted credentials Secret (a directory, one file per key)")


@dataclass(frozen=True)
class StepStore:
    """A store and the URI its blobs are named under."""

    uri: str
    store: Store

    def put(self, path: Path) -> tuple[Blob, str]:
        """Store a file (idempotent); its blob and the blob's URI."""
        blob = self.store.put(path)
        return blob, blob_uri(self.uri, blob.digest)

    def local(self, uri: str, dest: Path) -> Path:
        """A blob of this store as a local file: in place on a mounted store, else fetched to `dest` (verified)."""
        root, hexdigest = split_blob_uri(uri)
        if root != self.uri:
            raise ValueError(f"{uri[:200]} is not in the build's store {self.uri[:200]}")
        if isinstance(self.store, FileStore):
            return self.store.path(blob_key(hexdigest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        return self.store.fetch(hexdigest, dest)


def open_step_store(uri: str, credentials: str | None = None) -> StepStore:
    """Open the store a step was given; ValueError for a URI no backend takes. Credentials never leave here."""
    secret_dir = Path(credentials) if credentials else None
    ca = secret_dir / CA_KEY if secret_dir is not None and (secret_dir / CA_KEY).is_file() else None
    store: Store
    if uri.startswith("file://"):  # `bmfleet build --local`
        store = FileStore(Path(uri.removeprefix("file://")))
    else:
        secret = {k: v for k, v in (load_credentials(secret_dir) or {}).items() if k != CA_KEY}
        ref = StoreRef.model_validate({"type": uri.partition("://")[0], "uri": uri})
        store = open_store(ref, secret or None, pvc_root=Path(STORE_DIR), ca_bundle=ca)
    return StepStore(normal_store_uri(uri), store)
