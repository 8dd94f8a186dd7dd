"""OCI registry store: blobs by digest over the distribution API, and bmfleet artifacts as ORAS-style manifests.

Every network step is idempotent and retried (bounded, with backoff) as a whole: a blob upload that breaks — even
because the registry restarted and forgot the upload session — starts again with a HEAD (it may have landed) and a
new session; blobs already there are never sent again. Tags are conveniences; what rolls out is the digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from bmfleet.api.digests import sha256_file
from bmfleet.store._http import (
    Body,
    FileSlice,
    Reply,
    Response,
    Transport,
    download,
    is_loopback,
    read_reply,
    safe_url,
)
from bmfleet.store.artifact import (
    BMODEL_ARTIFACT_TYPE,
    EMPTY_JSON,
    MANIFEST_ACCEPT,
    MAX_MANIFEST,
    OCI_MANIFEST,
    TITLE,
    ArtifactFile,
    Descriptor,
    build_manifest,
    empty_config,
    parse_manifest,
    safe_title,
)
from bmfleet.store.base import Blob, DigestMismatchError, StoreError, blob_key, check_digest
from bmfleet.store.oci_auth import Authenticator, RegistryCredentials, credentials_for

_REPO = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
Progress = Callable[[str, str, int], None]  # (event, digest, bytes): blob-exists, blob-pushed, chunk, retry


@dataclass(frozen=True)
class PulledArtifact:
    digest: str
    artifact_type: str | None
    files: dict[str, Path]
    annotations: dict[str, str]


def parse_oci_uri(uri: str) -> tuple[str, str]:
    """`oci://host[:port]/repo/path` → (registry, repository)."""
    if not uri.startswith("oci://"):
        raise ValueError(f"not an oci:// URI: {uri[:80]!r}")
    registry, _, repository = uri.removeprefix("oci://").rstrip("/").partition("/")
    if not registry or not _REPO.fullmatch(repository):
        raise ValueError(f"oci URI needs oci://<registry>/<lower-case repository>: {uri[:80]!r}")
    return registry, repository


class OciStore:
    """A repository in an OCI registry: https, except plain http to a loopback registry given no CA bundle
    (`plain_http` overrides)."""

    def __init__(
        self,
        registry: str,
        repository: str,
        *,
        credentials: RegistryCredentials | None = None,
        plain_http: bool | None = None,
        ca_bundle: Path | None = None,
        transport: Transport | None = None,
        chunk_size: int = 0,
        progress: Progress | None = None,
    ) -> None:
        if not _REPO.fullmatch(repository):
            raise ValueError(f"invalid repository name {repository[:80]!r}")
        host = urlsplit(f"//{registry}").hostname or ""
        if plain_http is None:  # a CA bundle means TLS even on loopback (port-forwards, tests)
            plain_http = is_loopback(host) and ca_bundle is None
        scheme = "http" if plain_http else "https"
        self.registry, self.repository = registry, repository
        self.base = f"{scheme}://{registry}/v2/{repository}"
        self.transport = transport or Transport(ca_bundle=ca_bundle)
        self.chunk_size, self._progress = chunk_size, progress
        self._auth = Authenticator(self.transport, credentials, tls=not plain_http)

    @classmethod
    def from_uri(cls, uri: str, secret: Mapping[str, object] | None = None, **kwargs: Any) -> OciStore:
        registry, repository = parse_oci_uri(uri)
        return cls(registry, repository, credentials=credentials_for(registry, secret), **kwargs)

    # --- one request, authenticated --------------------------------------------------------------------------
    def _scope(self, method: str) -> str:
        return f"repository:{self.repository}:{'pull' if method in ('GET', 'HEAD') else 'pull,push'}"

    def _open(self, method: str, url: str, headers: Mapping[str, str] | None = None, body: Body = None) -> Response:
        """One attempt; answers one 401 challenge (a new token) before giving the response back."""
        scope = self._scope(method)
        resp = self.transport.open(method, url, dict(headers or {}) | self._auth.header(scope), body)
        if resp.status == 401:
            resp.close()
            if not self._auth.challenge(resp.headers.get("WWW-Authenticate"), scope):
                raise StoreError(f"{method} {safe_url(url)}: unauthorized (no or rejected credentials)")
            resp = self.transport.open(method, url, dict(headers or {}) | self._auth.header(scope), body)
            if resp.status == 401:
                resp.close()
                raise StoreError(f"{method} {safe_url(url)}: unauthorized (credentials rejected)")
        return resp

    def _call(self, method: str, url: str, headers: Mapping[str, str] | None = None, body: Body = None) -> Reply:
        return read_reply(self._open(method, url, headers, body), method, MAX_MANIFEST)

    def _expect(self, reply: Reply, method: str, *ok: int) -> Reply:
        if reply.status not in ok:
            raise StoreError(f"{method} {safe_url(reply.url)}: HTTP {reply.status}{_registry_error(reply.body)}")
        return reply

    def _note(self, event: str, digest: str, size: int) -> None:
        if self._progress:
            self._progress(event, digest, size)

    # --- blobs --------------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        url = f"{self.base}/blobs/sha256:{check_digest(digest)}"
        reply = self.transport.retry(f"HEAD blob in {self.repository}", lambda: self._call("HEAD", url))
        return self._expect(reply, "HEAD", 200, 404).status == 200

    def put(self, src: Path) -> Blob:
        desc = self.push_blob(src)
        hexdigest = desc.digest.removeprefix("sha256:")
        return Blob(blob_key(hexdigest), hexdigest, desc.size)

    def push_blob(self, src: Path | bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Upload unless the registry has it (HEAD first); POST then one PUT, or PATCH chunks when configured."""
        if isinstance(src, bytes):
            hexdigest, size = hashlib.sha256(src).hexdigest(), len(src)
        else:
            hexdigest, size = sha256_file(src), src.stat().st_size
        digest = f"sha256:{hexdigest}"

        def attempt() -> None:
            if self._call("HEAD", f"{self.base}/blobs/{digest}").status == 200:
                self._note("blob-exists", digest, size)
                return
            self._upload(src, digest, size)
            self._note("blob-pushed", digest, size)

        self.transport.retry(f"push {digest[:19]} to {self.repository}", attempt)
        return Descriptor(media_type, digest, size)

    def _upload(self, src: Path | bytes, digest: str, size: int) -> None:
        start = self._expect(self._call("POST", f"{self.base}/blobs/uploads/"), "POST", 202)
        location = self._location(start)
        chunk = self.chunk_size
        if chunk and size > chunk and isinstance(src, Path):
            for offset in range(0, size, chunk):
                length = min(chunk, size - offset)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + length - 1}",
                }
                reply = self._call("PATCH", location, headers, FileSlice(src, offset, length))
                location = self._location(self._expect(reply, "PATCH", 202))
                self._note("chunk", digest, offset + length)
            body: Body = b""
        else:
            body = src if isinstance(src, bytes) else FileSlice(src, 0, size)
        sep = "&" if urlsplit(location).query else "?"
        headers = {"Content-Type": "application/octet-stream"}
        self._expect(self._call("PUT", f"{location}{sep}digest={quote(digest)}", headers, body), "PUT", 201)

    def _location(self, reply: Reply) -> str:
        location = reply.headers.get("Location")
        if not location:
            raise StoreError(f"{safe_url(reply.url)}: registry gave no upload location")
        return urljoin(reply.url, location)

    def fetch(self, digest: str, dest: Path) -> Path:
        """Download a blob (resuming with Range after a dropped connection), verified against its digest."""
        hexdigest = check_digest(digest)
        url = f"{self.base}/blobs/sha256:{hexdigest}"
        download(
            self.transport, f"GET blob sha256:{hexdigest[:12]}", lambda h: self._open("GET", url, h), dest, hexdigest
        )
        return dest

    # --- manifests and artifacts --------------------------------------------------------------------------
    def push_manifest(self, data: bytes, media_type: str = OCI_MANIFEST, tag: str | None = None) -> Descriptor:
        """PUT by digest (what is rolled out), then under `tag` if given (a convenience for people)."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        headers = {"Content-Type": media_type}
        for ref in (digest, *([_check_tag(tag)] if tag else [])):
            url = f"{self.base}/manifests/{ref}"

            def put(url: str = url) -> Reply:
                return self._call("PUT", url, headers, data)

            self._expect(self.transport.retry(f"PUT manifest {ref[:19]}", put), "PUT", 201, 200)
        return Descriptor(media_type, digest, len(data))

    def push_artifact(
        self,
        files: Sequence[ArtifactFile],
        *,
        artifact_type: str = BMODEL_ARTIFACT_TYPE,
        annotations: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> Descriptor:
        """Push the files and the empty config as blobs, then the manifest that ties them together."""
        self.push_blob(EMPTY_JSON, empty_config().media_type)
        layers = []
        for f in files:
            blob = self.push_blob(f.path, f.media_type)
            layers.append(Descriptor(f.media_type, blob.digest, blob.size, {TITLE: f.name}))
        manifest = self.push_manifest(build_manifest(layers, artifact_type, annotations), OCI_MANIFEST, tag)
        return Descriptor(manifest.media_type, manifest.digest, manifest.size, artifact_type=artifact_type)

    def tag(self, digest: str, tag: str) -> None:
        data = self.fetch_manifest(digest)
        self.push_manifest(data, OCI_MANIFEST, tag)

    def resolve(self, reference: str) -> str:
        """A tag (or digest) → the manifest digest, as the registry reports it."""
        if reference.startswith("sha256:"):
            return f"sha256:{check_digest(reference)}"
        url = f"{self.base}/manifests/{_check_tag(reference)}"
        reply = self.transport.retry(f"HEAD {reference}", lambda: self._call("HEAD", url, {"Accept": MANIFEST_ACCEPT}))
        self._expect(reply, "HEAD", 200)
        digest = reply.headers.get("Docker-Content-Digest")
        if digest:
            return f"sha256:{check_digest(digest)}"
        return f"sha256:{hashlib.sha256(self._get_manifest(reference)).hexdigest()}"

    def fetch_manifest(self, digest: str) -> bytes:
        """The manifest bytes, checked against the digest (a registry cannot substitute another artifact)."""
        hexdigest = check_digest(digest)
        data = self._get_manifest(f"sha256:{hexdigest}")
        if hashlib.sha256(data).hexdigest() != hexdigest:
            raise DigestMismatchError(f"manifest sha256:{hexdigest[:12]} from {self.registry} does not match")
        return data

    def _get_manifest(self, ref: str) -> bytes:
        url = f"{self.base}/manifests/{ref}"
        reply = self.transport.retry(
            f"GET manifest {ref[:19]}", lambda: self._call("GET", url, {"Accept": MANIFEST_ACCEPT})
        )
        return self._expect(reply, "GET", 200).body

    def pull_artifact(self, reference: str, dest_dir: Path) -> PulledArtifact:
        """Every titled layer into `dest_dir/<title>`, each verified by digest (untitled layers are skipped)."""
        digest = self.resolve(reference)
        artifact_type, layers, annotations = parse_manifest(self.fetch_manifest(digest))
        files: dict[str, Path] = {}
        for layer in layers:
            title = (layer.annotations or {}).get(TITLE)
            if title:
                files[title] = self.fetch(layer.digest, dest_dir / safe_title(title))
        return PulledArtifact(digest, artifact_type, files, annotations)


def _check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ValueError(f"invalid tag {tag[:80]!r}")
    return tag


def _registry_error(body: bytes) -> str:
    """The registry's own error codes (`BLOB_UNKNOWN: ...`), short; the body never holds our secrets."""
    try:
        errors = json.loads(body).get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""
    return f" ({text[:300]})" if text else ""
