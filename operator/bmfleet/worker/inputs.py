"""Inputs of a Job, as local files: file:// paths, pvc://<claim>/<path> on the claim's mount, http(s) downloads.
Every failure is `InputError` (the worker's BadInput), naming the URI."""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from pathlib import Path

from bmfleet.api.digests import sha256_tree
from bmfleet.pipeline.pods import INPUTS_DIR

DOWNLOAD_TIMEOUT = 300


class InputError(Exception):
    """An input that cannot be had or does not match its expected digest."""


def resolve(uri: str, workdir: Path, expected_sha256: str | None = None, inputs_dir: str = INPUTS_DIR) -> Path:
    """A local path holding the content of `uri` (downloaded into `workdir` when remote)."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        path = Path(urllib.parse.unquote(rest))
    elif scheme == "pvc":
        path = Path(inputs_dir) / rest
    elif scheme in ("http", "https"):
        path = _download(uri, workdir)
    else:
        raise InputError(f"{uri}: {scheme}:// inputs need the artifact store, which this worker does not have yet")
    if not path.exists():
        raise InputError(f"{uri}: not found ({path})")
    if expected_sha256 and (actual := sha256_tree(path)) != expected_sha256:
        raise InputError(f"{uri}: sha256 {actual} does not match the expected {expected_sha256}")
    return path


def _download(uri: str, workdir: Path) -> Path:
    name = Path(urllib.parse.urlparse(uri).path).name or "download"
    dest = workdir / "downloads" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(uri, timeout=DOWNLOAD_TIMEOUT) as resp, dest.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        raise InputError(f"{uri}: download failed: {exc}") from exc
    return dest
