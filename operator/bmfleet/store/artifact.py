"""The bmfleet artifact as an OCI image manifest, ORAS-style (no referrers API needed: it is addressed by digest).

`artifactType` says what it is; the config is the OCI empty descriptor; every file is a layer with its own media
type and an `org.opencontainers.image.title`, which is what makes `oras pull` write it back under its name.
The manifest is deterministic (no timestamps unless the caller adds one), so pushing the same files twice gives
the same digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BMODEL_ARTIFACT_TYPE = "application/vnd.bmfleet.bmodel.v1"
MEDIA_BMODEL = "application/vnd.bmfleet.bmodel.v1+bmodel"
MEDIA_GATE_REPORT = "application/vnd.bmfleet.gate-report.v1+html"
MEDIA_GATE_RESULT = "application/vnd.bmfleet.gate-result.v1+json"
MEDIA_PROVENANCE = "application/vnd.bmfleet.provenance.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
TITLE = "org.opencontainers.image.title"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))
MAX_MANIFEST = 4 << 20  # the distribution spec's recommended limit; refuses a hostile endless body


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (digest with its `sha256:` prefix)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Descriptor:
        try:
            return cls(str(doc["mediaType"]), str(doc["digest"]), int(doc["size"]), doc.get("annotations"))
        except (KeyError, TypeError, ValueError):
            raise ValueError("malformed OCI descriptor") from None


@dataclass(frozen=True)
class ArtifactFile:
    """One file of an artifact: the bmodel, the gate report or result, or the provenance record."""

    path: Path
    media_type: str
    title: str | None = None

    @property
    def name(self) -> str:
        return safe_title(self.title or self.path.name)


def safe_title(title: str) -> str:
    """A layer title becomes a file name on pull: a plain name only, or a hostile manifest writes anywhere."""
    if not title or title in (".", "..") or "/" in title or "\\" in title or "\0" in title:
        raise ValueError(f"unsafe artifact file name {title[:80]!r}")
    return title


def empty_config() -> Descriptor:
    return Descriptor(OCI_EMPTY, EMPTY_DIGEST, len(EMPTY_JSON))


def build_manifest(
    layers: Sequence[Descriptor], artifact_type: str, annotations: Mapping[str, str] | None = None
) -> bytes:
    """The manifest bytes exactly as pushed (their sha256 is the artifact's digest)."""
    names = [d.annotations.get(TITLE) if d.annotations else None for d in layers]
    if len(set(names)) != len(names):
        raise ValueError("two files of one artifact have the same name")
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_config().to_json() | {"data": "e30="},
        "layers": [d.to_json() for d in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def parse_manifest(data: bytes) -> tuple[str | None, list[Descriptor], dict[str, str]]:
    """(artifactType, layers, annotations) of an image manifest; ORAS v1.0 artifacts carry the type on config."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
            raise ValueError("not a schemaVersion 2 manifest")
        layers = [Descriptor.from_json(d) for d in doc.get("layers", [])]
        config = doc.get("config") or {}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed manifest: {exc}") from None
    artifact_type = doc.get("artifactType") or (
        config.get("mediaType") if config.get("mediaType") != OCI_EMPTY else None
    )
    return artifact_type, layers, dict(doc.get("annotations") or {})
