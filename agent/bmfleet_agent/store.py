"""On-disk A/B layout of one model, where every change is a single atomic rename.

    models/<name>/slots/sha256-<hex>.bmodel       verified files, named by digest (written once, never changed)
    models/<name>/slots/sha256-<hex>.bmodel.part  a download in progress (kept across restarts for resume)
    models/<name>/current  -> slots/...           what the application loads
    models/<name>/previous -> slots/...           what a rollback returns to

A slot only appears by renaming a ``.part`` whose size, sha256 and chip were verified, so ``current`` can only
ever point at a complete, verified file; moving it is one ``rename(2)`` of a symlink, so a power cut leaves it
at the old or at the new model.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional

from bmfleet_agent import fsutil

PART = ".part"
PREFIX = "sha256-"
SUFFIX = ".bmodel"


def slot_name(digest: str) -> str:
    return PREFIX + digest.split(":", 1)[1] + SUFFIX


def digest_of(slot_file: str) -> Optional[str]:
    """The digest a slot file is named after, or None for anything else."""
    base = os.path.basename(slot_file)
    if base.startswith(PREFIX) and base.endswith(SUFFIX):
        return "sha256:" + base[len(PREFIX) : -len(SUFFIX)]
    return None


class ModelDir:
    """The directory of one model name."""

    def __init__(self, models_root: str, name: str) -> None:
        self.path = os.path.join(models_root, name)
        self.slots = os.path.join(self.path, "slots")
        self.current_link = os.path.join(self.path, "current")
        self.previous_link = os.path.join(self.path, "previous")

    def ensure(self) -> None:
        fsutil.makedirs(self.path)
        fsutil.makedirs(self.slots)

    def slot(self, digest: str) -> str:
        return os.path.join(self.slots, slot_name(digest))

    def part(self, digest: str) -> str:
        return self.slot(digest) + PART

    def has_slot(self, digest: str) -> bool:
        return os.path.isfile(self.slot(digest))

    def _link_digest(self, link: str) -> Optional[str]:
        target = fsutil.read_link(link)
        return digest_of(target) if target else None

    def active(self) -> Optional[str]:
        return self._link_digest(self.current_link)

    def previous(self) -> Optional[str]:
        return self._link_digest(self.previous_link)

    def commit_part(self, digest: str) -> None:
        """Turn a verified download into a slot (the caller fsynced the file)."""
        fsutil.checkpoint(f"rename part {digest}")
        os.replace(self.part(digest), self.slot(digest))
        fsutil.fsync_dir(self.slots)

    def _point(self, link: str, digest: Optional[str]) -> None:
        if digest is None:
            fsutil.remove(link)
            fsutil.fsync_dir(self.path)
        else:
            fsutil.replace_symlink(link, os.path.join("slots", slot_name(digest)))

    def activate(self, digest: str) -> None:
        """Make `digest` current, keeping what was current as previous (previous first: current is never
        left pointing anywhere but a verified slot, and previous is always a real model to go back to)."""
        old = self.active()
        if old == digest:
            return
        if old is not None:
            self._point(self.previous_link, old)
        self._point(self.current_link, digest)

    def restore(self, current: Optional[str], previous: Optional[str]) -> None:
        """Put both links back as they were (after a failed probe, or for a requested rollback)."""
        if self.active() != current:
            self._point(self.current_link, current)
        if self.previous() != previous and (previous is None or self.has_slot(previous)):
            self._point(self.previous_link, previous)

    def clean_temps(self, keep_parts: Iterable[Optional[str]]) -> List[str]:
        """Remove temp links and downloads nobody wants any more; keep `.part` files of wanted digests."""
        keep = {slot_name(d) + PART for d in keep_parts if d}
        removed = []
        for d in (self.path, self.slots):
            if not os.path.isdir(d):
                continue
            for entry in sorted(os.listdir(d)):
                full = os.path.join(d, entry)
                if entry.endswith(fsutil.TMP_SUFFIX) or (entry.endswith(PART) and entry not in keep):
                    fsutil.remove(full)
                    removed.append(full)
        return removed

    def gc(self, keep: Iterable[Optional[str]]) -> List[str]:
        """Delete slots other than current, previous and `keep`. Never touches what the links point at."""
        wanted = {slot_name(d) for d in keep if d}
        for d in (self.active(), self.previous()):
            if d:
                wanted.add(slot_name(d))
        removed = []
        if os.path.isdir(self.slots):
            for entry in sorted(os.listdir(self.slots)):
                if entry.endswith(SUFFIX) and entry not in wanted:
                    fsutil.remove(os.path.join(self.slots, entry))
                    removed.append(entry)
        return removed


def model_names(models_root: str) -> List[str]:
    if not os.path.isdir(models_root):
        return []
    return sorted(n for n in os.listdir(models_root) if os.path.isdir(os.path.join(models_root, n)))
