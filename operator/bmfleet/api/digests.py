"""Content digests, in one place for every layer that names artifacts by content (store, toolchains, worker)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Hex sha256 of an input: a file's content, or for a directory the sha256 of its listing (one
    `<relative posix path> <sha256>` line per regular file, sorted by path), so a dataset folder has one digest."""
    if not path.is_dir():
        return sha256_file(path)
    lines = sorted(f"{p.relative_to(path).as_posix()} {sha256_file(p)}\n" for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()
