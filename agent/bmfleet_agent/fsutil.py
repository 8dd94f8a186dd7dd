"""Crash-safe filesystem steps: write-temp + fsync + rename, symlink swaps, directory fsyncs.

Every step that changes the disk calls :func:`checkpoint` first. In production it does nothing. With
``BMFLEET_AGENT_CRASH_AT=N`` in the environment the process SIGKILLs itself at the N-th step, so a test can
stop the agent at *every* instant that matters and check that what is left on disk is consistent.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from typing import Optional

CRASH_ENV = "BMFLEET_AGENT_CRASH_AT"
TMP_SUFFIX = ".tmp"

_lock = threading.Lock()
_steps = 0
_crash_at: Optional[int] = None
_crash_read = False


def checkpoint(label: str) -> None:
    """Count one filesystem step; die here if the crash hook says so (tests only)."""
    global _steps, _crash_at, _crash_read  # noqa: PLW0603 - one process-wide counter is the point
    with _lock:
        if not _crash_read:
            raw = os.environ.get(CRASH_ENV, "")
            _crash_at = int(raw) if raw.strip() else None
            _crash_read = True
        _steps += 1
        hit = _crash_at is not None and _steps == _crash_at
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def steps_taken() -> int:
    """How many filesystem steps this process made (the crash test uses it to size its sweep)."""
    with _lock:
        return _steps


def fsync_dir(path: str) -> None:
    """Make a rename or unlink in `path` durable (a rename is only durable once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: str, mode: int = 0o755) -> None:
    if not os.path.isdir(path):
        checkpoint(f"mkdir {path}")
        os.makedirs(path, mode=mode, exist_ok=True)
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content, never a mix."""
    tmp = path + TMP_SUFFIX
    checkpoint(f"write {tmp}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is ignored when a stale temp file already exists
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    checkpoint(f"rename {tmp}")
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def replace_symlink(link: str, target: str) -> None:
    """Point `link` at `target` atomically: a new symlink under a temp name, renamed over the old one."""
    tmp = link + TMP_SUFFIX
    checkpoint(f"symlink {tmp}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    checkpoint(f"rename {tmp}")
    os.replace(tmp, link)
    fsync_dir(os.path.dirname(os.path.abspath(link)))


def remove(path: str) -> None:
    if os.path.lexists(path):
        checkpoint(f"unlink {path}")
        os.unlink(path)


def read_link(link: str) -> Optional[str]:
    """The target of symlink `link`, or None if there is none."""
    try:
        return os.readlink(link)
    except OSError:
        return None


def sha256_file(path: str) -> str:
    """``sha256:<hex>`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()
