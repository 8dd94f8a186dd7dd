"""Deterministic names and labels: a restarted operator finds what it made instead of making it twice."""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_NAME = 63  # Job names become pod label values (job-name), which are capped at 63 characters.

LABEL_BUILD = "bmfleet.io/build"
LABEL_STEP = "bmfleet.io/step"
LABEL_STAGE = "bmfleet.io/stage"
ANNOTATION_SHAPE = "bmfleet.io/shape"
ANNOTATION_GENERATION = "bmfleet.io/generation"
ANNOTATION_HASH = "bmfleet.io/spec-hash"


def digest(obj: Any, length: int = 10) -> str:
    """Short, stable hash of a JSON-able value (sorted keys, no whitespace)."""
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:length]


def child_name(parent: str, step: str, key: str) -> str:
    """`<parent>-<step>-<key>`, with the parent shortened (and hashed) so the whole fits in 63 characters."""
    suffix = f"-{step}-{key}"
    room = MAX_NAME - len(suffix)
    if len(parent) > room:
        parent = parent[: room - 6].rstrip("-.") + "-" + digest(parent, 5)
    return f"{parent}{suffix}"


def standard_labels(build: str, step: str) -> dict[str, str]:
    """Labels on every child: selectable by build and step, recognisable by the usual app.kubernetes.io keys."""
    return {
        LABEL_BUILD: build,
        LABEL_STEP: step,
        "app.kubernetes.io/name": "bmfleet",
        "app.kubernetes.io/instance": build,
        "app.kubernetes.io/component": step,
        "app.kubernetes.io/part-of": "bmfleet",
        "app.kubernetes.io/managed-by": "bmfleet-operator",
    }
