"""S3-compatible store: blobs at `<prefix>/blobs/sha256/<hex>`, requests signed with AWS SigV4 (stdlib hmac).

Why not boto3: it would add ~100 MB to the worker image for four calls (HEAD, PUT, GET, and the signature).
Content-addressed keys make the signed payload hash free: it is the blob's own digest. Path-style addressing,
which every S3-compatible server and AWS both accept; single PUT, so one blob is at most 5 GiB.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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
from bmfleet.store.base import Blob, StoreError, blob_key, check_digest

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PUT = 5 << 30
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


def _pick(secret: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = secret.get(name)
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str) and value:
            return value.strip()
    return None


def parse_s3_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """`s3://bucket/prefix[?endpoint=...&region=...]` → (bucket, prefix, query); checks the bucket name and an
    endpoint given in the query."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.hostname:
        raise ValueError(f"not an s3://bucket/prefix URI: {uri[:80]!r}")
    if not _BUCKET.fullmatch(parts.netloc):
        raise ValueError(f"invalid bucket name {parts.netloc[:80]!r}")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if "endpoint" in query:
        check_endpoint(query["endpoint"])
    return parts.netloc, parts.path, query


def check_endpoint(endpoint: str) -> str:
    """https, or plain http to loopback only (keys are signed, but the content would travel in clear)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        raise ValueError(f"S3 endpoint must be https (plain http only on loopback): {safe_url(endpoint)}")
    return endpoint


class S3Store:
    """One bucket (and key prefix) of an S3-compatible server. Anonymous when no keys are given."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        ca_bundle: Path | None = None,
        transport: Transport | None = None,
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid bucket name {bucket[:80]!r}")
        endpoint = check_endpoint(endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        parts = urlsplit(endpoint)
        self.bucket, self.prefix, self.endpoint, self.region = bucket, prefix.strip("/"), endpoint, region
        self._host = parts.netloc
        self._keys = (access_key, secret_key) if access_key and secret_key else None
        self._token = session_token
        self.transport = transport or Transport(ca_bundle=ca_bundle)

    @classmethod
    def from_uri(cls, uri: str, secret: Mapping[str, object] | None = None, **kwargs: Any) -> S3Store:
        """`s3://bucket/prefix[?endpoint=https://...&region=...]`; keys (and endpoint, region) from the secret."""
        bucket, prefix, query = parse_s3_uri(uri)
        secret = secret or {}
        return cls(
            bucket,
            prefix,
            endpoint=query.get("endpoint") or _pick(secret, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "endpoint"),
            region=query.get("region") or _pick(secret, "AWS_REGION", "AWS_DEFAULT_REGION", "region") or "us-east-1",
            access_key=_pick(secret, "AWS_ACCESS_KEY_ID", "accessKeyId", "access_key_id"),
            secret_key=_pick(secret, "AWS_SECRET_ACCESS_KEY", "secretAccessKey", "secret_access_key"),
            session_token=_pick(secret, "AWS_SESSION_TOKEN", "sessionToken", "session_token"),
            **kwargs,
        )

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str) -> tuple[str, str]:
        path = "/" + quote(f"{self.bucket}/{self.object_key(key)}", safe="/-_.~")
        return f"{self.endpoint}{path}", path

    def _signed(self, method: str, path: str, payload_sha256: str, now: dt.datetime | None = None) -> dict[str, str]:
        """SigV4 headers for one request (no query string: this store never needs one)."""
        now = now or dt.datetime.now(dt.UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": self._host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
        if self._token:
            headers["x-amz-security-token"] = self._token
        if not self._keys:
            return headers
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload_sha256]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = f"AWS4{self._keys[1]}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._keys[0]}/{scope}, SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    def _open(
        self, method: str, key: str, payload_sha256: str, body: Body = None, extra: Mapping[str, str] | None = None
    ) -> Response:
        url, path = self._url(key)
        headers = dict(extra or {}) | self._signed(method, path, payload_sha256)
        return self.transport.open(method, url, headers, body, redirects=0)

    def _call(
        self, method: str, key: str, payload_sha256: str, body: Body = None, extra: Mapping[str, str] | None = None
    ) -> Reply:
        def attempt() -> Reply:
            return read_reply(self._open(method, key, payload_sha256, body, extra), method, 1 << 20)

        reply = self.transport.retry(f"{method} s3://{self.bucket}/{self.object_key(key)}", attempt)
        if reply.status == 403 or (reply.status >= 300 and reply.status != 404):
            code = _ERROR_CODE.search(reply.body)
            detail = f" ({code.group(1).decode(errors='replace')})" if code else ""
            raise StoreError(f"{method} s3://{self.bucket}/{self.object_key(key)}: HTTP {reply.status}{detail}")
        return reply

    # --- objects ------------------------------------------------------------------------------------------
    def head_object(self, key: str) -> int | None:
        """Size of an object, or None when it is not there."""
        reply = self._call("HEAD", key, EMPTY_SHA256)
        return None if reply.status == 404 else int(reply.headers.get("Content-Length") or 0)

    def put_object(
        self, key: str, src: Path | bytes, content_type: str = "application/octet-stream", sha256: str | None = None
    ) -> None:
        """One signed PUT; `sha256` of the content when the caller already knows it (it is signed, not re-read)."""
        payload_sha256 = sha256 or (hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src))
        body: Body = src if isinstance(src, bytes) else FileSlice(src, 0, src.stat().st_size)
        size = len(src) if isinstance(src, bytes) else src.stat().st_size
        if size > MAX_PUT:
            raise StoreError(f"{size} bytes is more than one S3 PUT takes ({MAX_PUT})")
        self._call("PUT", key, payload_sha256, body, {"Content-Type": content_type})

    def get_object(self, key: str, dest: Path, sha256: str) -> Path:
        """Download to `dest`, resuming after a dropped connection, and verify the content's sha256."""
        what = f"GET s3://{self.bucket}/{self.object_key(key)}"
        download(self.transport, what, lambda extra: self._open("GET", key, EMPTY_SHA256, None, extra), dest, sha256)
        return dest

    # --- Store protocol ------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self.head_object(blob_key(digest)) is not None

    def put(self, src: Path) -> Blob:
        """Upload unless a blob with this digest is already there (keys are content digests: same key, same bytes)."""
        digest = sha256_file(src)
        key = blob_key(digest)
        if self.head_object(key) is None:
            self.put_object(key, src, sha256=digest)
        return Blob(key, digest, src.stat().st_size)

    def fetch(self, digest: str, dest: Path) -> Path:
        return self.get_object(blob_key(digest), dest, check_digest(digest))
