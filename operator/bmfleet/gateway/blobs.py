"""Blob bytes for devices: from a mounted PVC / directory store in place, or from an OCI registry or S3 bucket
fetched once into a local content-addressed cache. Every local file is hashed once before it is first served (a
PVC is writable by every Job; a thousand devices should not download a corrupt file to find out).

Only stores named by `--store-uri` are served from: the desired state says where a blob is, and the gateway
refuses to read anywhere else even if an EdgeDevice's spec points there.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bmfleet.api.build import StoreRef
from bmfleet.api.digests import sha256_file
from bmfleet.gateway.http import BodyWriter
from bmfleet.gateway.view import BlobRef
from bmfleet.store import DigestMismatchError, StoreError, open_store
from bmfleet.store.base import blob_key, check_digest
from bmfleet.store.fs import FileStore
from bmfleet.store.uris import store_root

CHUNK = 64 << 10  # per connection in flight: x1000 downloads at once, and what a client that stops reading wastes
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class BlobError(Exception):
    """The blob cannot be served now: `status` for the device (404 not in the store, 502 store trouble)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LocalBlob:
    path: Path
    size: int


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive) for a single satisfiable range; None to send the whole blob (no or ignorable Range);
    "unsatisfiable" for 416."""
    m = _RANGE.match(header.strip()) if header else None
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n and size else "unsatisfiable"
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size:
        return "unsatisfiable"
    return None if end < start else (start, end)


class BlobSource:
    def __init__(
        self,
        allowed: list[str],
        pvc_root: Path,
        cache_dir: Path,
        credentials: Mapping[str, object] | None = None,
        ca_bundle: Path | None = None,
        on_fetch: Callable[[str], None] = lambda result: None,
    ) -> None:
        self.allowed = [a.rstrip("/") for a in allowed] or ["pvc:/"]
        self.pvc_root, self.cache_dir = pvc_root, cache_dir
        self.credentials, self.ca_bundle = credentials, ca_bundle
        self._verified: dict[tuple[str, int, int, int], bool] = {}
        self._inflight: dict[str, asyncio.Future[LocalBlob]] = {}
        self.on_fetch = on_fetch  # each remote fetch's result: ok, mismatch or failed (the gateway's metric)

    def _permitted(self, root: str) -> bool:
        """Under an allowed store, by plain prefix; dot segments and escapes would walk out of it, so none."""
        path = root.partition("://")[2].partition("?")[0]
        if "%" in path or "\\" in path or any(seg in (".", "..") for seg in path.split("/")):
            return False
        return any(root == a or root.startswith(a + "/") or root.startswith(a + "?") for a in self.allowed)

    async def local(self, ref: BlobRef) -> LocalBlob:
        """A local file with the blob's bytes, verified; concurrent callers for one blob share one fetch/hash."""
        hexdigest = check_digest(ref.digest)
        fut = self._inflight.get(hexdigest)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[hexdigest] = fut
            try:
                fut.set_result(await self._resolve(ref, hexdigest))
            except BaseException as e:
                fut.set_exception(e)
                fut.exception()  # retrieved: do not warn when nobody else was waiting
            finally:
                del self._inflight[hexdigest]
        blob = await asyncio.shield(fut)
        if blob.size != ref.size:
            raise BlobError(502, f"{ref.digest} is {blob.size} bytes in the store, the desired state says {ref.size}")
        return blob

    async def _resolve(self, ref: BlobRef, hexdigest: str) -> LocalBlob:
        scheme, root = ref.uri.partition("://")[0], store_root(ref.uri, hexdigest)
        if not self._permitted(root):
            raise BlobError(404, f"{ref.digest}: its store is not one this gateway serves from")
        if scheme in ("pvc", "file"):
            return await self._in_place(scheme, root, hexdigest)
        if scheme in ("oci", "s3"):
            return await self._cached(scheme, root, hexdigest)
        raise BlobError(404, f"{ref.digest}: unsupported store scheme {scheme!r}")

    async def _in_place(self, scheme: str, root: str, hexdigest: str) -> LocalBlob:
        try:
            if scheme == "file":
                store = FileStore(Path(root.removeprefix("file://")))
            else:
                store = open_store(StoreRef(type="pvc", uri=root), pvc_root=self.pvc_root)  # type: ignore[assignment]
            path = store.path(blob_key(hexdigest))
            st = path.stat()
        except (ValueError, OSError) as e:
            raise BlobError(404, f"sha256:{hexdigest} is not in its store: {type(e).__name__}") from e
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._verified:
            actual = await asyncio.to_thread(sha256_file, path)
            if actual != hexdigest:
                raise BlobError(502, f"{path} does not hash to its name")
            self._verified[key] = True
        return LocalBlob(path, st.st_size)

    async def _cached(self, scheme: str, root: str, hexdigest: str) -> LocalBlob:
        dest = self.cache_dir / "sha256" / hexdigest
        if dest.is_file():  # only ever renamed into place after the store verified it
            return LocalBlob(dest, dest.stat().st_size)
        try:
            store = open_store(StoreRef(type=scheme, uri=root), self.credentials, ca_bundle=self.ca_bundle)
            await asyncio.to_thread(store.fetch, hexdigest, dest)
        except DigestMismatchError as e:
            self.on_fetch("mismatch")
            raise BlobError(502, f"sha256:{hexdigest} from {scheme} did not match its digest") from e
        except (StoreError, ValueError, OSError) as e:
            self.on_fetch("failed")
            raise BlobError(502, f"fetching sha256:{hexdigest} from its {scheme} store failed: {e}") from e
        self.on_fetch("ok")
        return LocalBlob(dest, dest.stat().st_size)


def body_writer(
    path: Path, start: int, length: int, allowed: Callable[[], bool], sent_bytes: Callable[[int], None]
) -> BodyWriter:
    """Streams `length` bytes from `start`, stopping early if `allowed()` turns false (a credential revoked
    mid-download); `sent_bytes` counts what was handed to the connection, also when it breaks. Reads happen on
    the loop: after the first device the file is in the page cache, where a pread costs less than a hop to
    a worker thread (TLS encryption of the same bytes costs far more)."""

    async def write(writer: asyncio.StreamWriter) -> int:
        fd = os.open(path, os.O_RDONLY)
        sent = 0
        try:
            while sent < length and allowed():
                data = os.pread(fd, min(CHUNK, length - sent), start + sent)
                if not data:
                    break
                writer.write(data)
                sent += len(data)
                sent_bytes(len(data))
                await writer.drain()
        finally:
            os.close(fd)
        return sent

    return write
