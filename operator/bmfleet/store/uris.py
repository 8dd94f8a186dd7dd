"""Where a blob is, as one string: the store's URI plus the blob's digest, in the form the gateway and the
status share. `oci://host/repo@sha256:<hex>` (a registry names blobs by digest), `<store>/blobs/sha256/<hex>`
for pvc://, file:// and s3:// (an s3 query string, e.g. `?endpoint=...`, stays at the end)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from bmfleet.store.base import SHA256_HEX, blob_key, check_digest


def normal_store_uri(uri: str) -> str:
    """The store URI without a trailing slash before its query (the form blob URIs are built from)."""
    base, sep, query = uri.partition("?")
    return base.rstrip("/") + sep + query


def blob_uri(store_uri: str, digest: str) -> str:
    """The URI of the blob `digest` in the store `store_uri`."""
    hexdigest = check_digest(digest)
    if store_uri.startswith("oci://"):
        return f"{store_uri.rstrip('/')}@sha256:{hexdigest}"
    base, sep, query = normal_store_uri(store_uri).partition("?")
    return f"{base}/{blob_key(hexdigest)}{sep}{query}"


def store_root(uri: str, hexdigest: str) -> str:
    """The store URI of a blob URI naming `hexdigest`; a URI that is already a store root is returned as it is."""
    if uri.startswith("oci://"):
        return uri.removesuffix(f"@sha256:{hexdigest}")
    base, sep, query = uri.partition("?")
    return base.removesuffix("/" + blob_key(hexdigest)).rstrip("/") + sep + query


def split_blob_uri(uri: str) -> tuple[str, str]:
    """(store URI, hex digest) of a blob URI; ValueError when it names no blob."""
    if uri.startswith("oci://"):
        root, _, hexdigest = uri.partition("@sha256:")
    else:
        base = uri.partition("?")[0]
        head, _, hexdigest = base.rpartition("/blobs/sha256/")
        if not head:
            hexdigest = ""
    if not SHA256_HEX.fullmatch(hexdigest):
        raise ValueError(f"{uri[:120]!r} names no blob (…/blobs/sha256/<hex> or oci://…@sha256:<hex>)")
    root = store_root(uri, hexdigest)
    return root, hexdigest


def load_credentials(path: Path | None) -> Mapping[str, object] | None:
    """Store credentials from a mounted Secret: a Secret volume directory (one file per key; `.dockerconfigjson`
    is a key, the kubelet's own `..data` entries are not), or a JSON file (docker config or AWS_* keys)."""
    if path is None:
        return None
    if path.is_dir():
        return {p.name: p.read_text().strip() for p in path.iterdir() if p.is_file() and not p.name.startswith("..")}
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: store credentials must be a JSON object")
    return doc
