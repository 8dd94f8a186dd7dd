"""What every artifact store has in common: blobs named by their sha256, a Protocol the backends satisfy.

Digests are bare lower-case hex here (as `FileStore` always used them); the OCI layer adds the `sha256:` prefix
at its edge. Keeping one form in the interface means a status digest can be handed to any backend unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

SHA256_HEX = re.compile(r"^[a-f0-9]{64}$")


class StoreError(RuntimeError):
    """A store operation failed for good (after retries); the message never carries credentials."""


class DigestMismatchError(StoreError):
    """Content did not hash to the digest it was asked for: never keep it."""


@dataclass(frozen=True)
class Blob:
    """A stored artifact: where it is (relative to the store root), its digest and size."""

    key: str
    digest: str
    size: int


def blob_key(digest: str) -> str:
    """The layout shared by the filesystem and S3 stores (and the registry's own path scheme)."""
    return f"blobs/sha256/{check_digest(digest)}"


def check_digest(digest: str) -> str:
    """Accept `<hex>` or `sha256:<hex>`, return the hex; anything else would let a caller escape a key layout."""
    hexdigest = digest.removeprefix("sha256:")
    if not SHA256_HEX.fullmatch(hexdigest):
        raise ValueError(f"not a sha256 digest: {digest[:80]!r}")
    return hexdigest


@runtime_checkable
class Store(Protocol):
    """A content-addressed blob store. `put` is idempotent: content already there is not uploaded again."""

    def put(self, src: Path) -> Blob:
        """Store a file's content under its digest."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        ...

    def fetch(self, digest: str, dest: Path) -> Path:
        """Write the blob to `dest` (atomically, digest verified) and return `dest`."""
        ...
