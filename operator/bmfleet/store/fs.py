"""Filesystem (PVC) artifact store: content-addressed blobs plus a compile-cache index.

Layout under the store root: `blobs/sha256/<digest>` (immutable, written atomically), `cache/<key>` (the
digest a compile-cache key resolved to). A PVC mounted in every Job is the store's root in a cluster.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bmfleet.api.digests import sha256_file
from bmfleet.store.base import SHA256_HEX, Blob, DigestMismatchError, StoreError, blob_key

__all__ = ["Blob", "FileStore"]


class FileStore:
    """Blobs by digest in a directory tree. Writes are atomic (temp file + rename), so a reader never sees
    half a blob and two writers of the same content both succeed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_key(self, digest: str) -> str:
        return blob_key(digest)

    def put(self, src: Path) -> Blob:
        """Store a file's content; returns its key. Existing identical content is not rewritten."""
        digest = sha256_file(src)
        key = self.blob_key(digest)
        dest = self.root / key
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)  # blobs are immutable and read by other pods and tools
            os.replace(tmp, dest)
        return Blob(key=key, digest=digest, size=dest.stat().st_size)

    def exists(self, digest: str) -> bool:
        return (self.root / self.blob_key(digest)).is_file()

    def fetch(self, digest: str, dest: Path) -> Path:
        """Copy a blob out (atomically), re-checking its digest: a PVC is shared and writable by every Job."""
        src = self.root / self.blob_key(digest)
        if not src.is_file():
            raise StoreError(f"blob sha256:{digest.removeprefix('sha256:')} is not in {self.root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            if sha256_file(Path(tmp)) != digest.removeprefix("sha256:"):
                raise DigestMismatchError(f"{src} does not hash to its name")
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def path(self, key: str) -> Path:
        """Local path of a stored key; refuses keys that would leave the store."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{key!r} is outside the store")
        return path

    def remember(self, cache_key: str, digest: str) -> None:
        """Record that `cache_key` compiled to the blob `digest`."""
        entry = self.root / "cache" / cache_key
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".incoming-")
        with os.fdopen(fd, "w") as f:
            f.write(digest)
        os.replace(tmp, entry)

    def lookup(self, cache_key: str) -> Blob | None:
        """The blob a cache key resolved to, if both the entry and the blob are still there."""
        entry = self.root / "cache" / cache_key
        if not entry.is_file():
            return None
        digest = entry.read_text().strip()
        if not SHA256_HEX.fullmatch(digest):
            return None
        blob = self.root / self.blob_key(digest)
        return Blob(self.blob_key(digest), digest, blob.stat().st_size) if blob.is_file() else None
