"""Resumable blob download into a ``.part`` file: a dropped link costs only the bytes not yet on disk.

The bytes already in the ``.part`` file are trusted only as far as the final sha256 check: a power cut can
leave a tail that was never written, and the digest check throws such a file away.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Mapping, Optional

from bmfleet_agent import fsutil
from bmfleet_agent.protocol import DOWNLOAD_FAILED, SIZE_MISMATCH
from bmfleet_agent.transport import Transport, TransportError

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
SYNC_EVERY = 4 << 20


class DownloadError(Exception):
    """The gateway answered, but not with the bytes asked for. `reason` is a protocol reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InterruptedDownloadError(TransportError):
    """The body stopped before the end; what arrived is on disk and the next attempt resumes from there."""


def fetch(
    transport: Transport,
    url: str,
    headers: Mapping[str, str],
    part: str,
    size: int,
    timeout: float,
    chunk: int = 256 << 10,
    progress: Optional[Callable[[int], None]] = None,
    budget: int = 0,
) -> int:
    """Bring `part` up to `size` bytes, resuming from its current length. Returns the bytes received now.

    With a `budget`, stop after that many bytes (raising InterruptedDownloadError) so the caller can report
    progress between pieces of a large blob; the next call resumes.
    """
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have > size:
        fsutil.remove(part)
        have = 0
    if have == size:
        return 0
    hdrs = dict(headers)
    if have:
        hdrs["Range"] = f"bytes={have}-"
    received = 0
    with transport.request("GET", url, hdrs, timeout=timeout) as resp:
        if resp.status == 416:
            fsutil.remove(part)  # our .part is not a prefix the server recognises: start over next time
            raise DownloadError(DOWNLOAD_FAILED, f"GET {url}: 416 for bytes={have}-; restarting the download")
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
            if not m or int(m.group(1)) != have:
                raise DownloadError(
                    DOWNLOAD_FAILED, f"GET {url}: bad Content-Range {resp.headers.get('content-range')}"
                )
            if m.group(3) != "*" and int(m.group(3)) != size:
                raise DownloadError(SIZE_MISMATCH, f"blob is {m.group(3)} bytes, the desired state says {size}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        elif resp.status == 200:
            length = resp.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) != size:
                raise DownloadError(SIZE_MISMATCH, f"blob is {length} bytes, the desired state says {size}")
            have = 0  # the server ignored Range (or there was none): rewrite from the start
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        else:
            detail = resp.read(300).decode("utf-8", "replace")
            raise DownloadError(DOWNLOAD_FAILED, f"GET {url}: HTTP {resp.status} {detail}".strip())
        fsutil.checkpoint(f"open {part}")
        fd = os.open(part, flags, 0o644)
        try:
            unsynced = 0
            while have < size and not (budget and received >= budget):
                data = resp.read(min(chunk, size - have))
                if not data:
                    break
                fsutil.checkpoint(f"append {part}")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                have += len(data)
                received += len(data)
                unsynced += len(data)
                if unsynced >= SYNC_EVERY:
                    os.fsync(fd)
                    unsynced = 0
                if progress:
                    progress(have)
        finally:
            os.fsync(fd)  # keep what arrived, also when the link dropped mid-body
            os.close(fd)
    if have < size:
        why = "paused (step budget)" if budget and received >= budget else "connection ended"
        raise InterruptedDownloadError(f"GET {url}: {why} at {have} of {size} bytes")
    return received
