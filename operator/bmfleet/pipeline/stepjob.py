"""One Job manifest shape for every pipeline step (resolve, compile, combine, gate): owner reference, labels,
a name that hashes the pod, and a podFailurePolicy that fails at once on the worker's bad-input exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bmfleet.api.common import API_VERSION
from bmfleet.pipeline.names import ANNOTATION_GENERATION, ANNOTATION_HASH, child_name, digest, standard_labels
from bmfleet.pipeline.pods import EXIT_BAD_INPUT


@dataclass(frozen=True)
class Owner:
    """The BModelBuild a child belongs to (for names, labels and the owner reference)."""

    name: str
    namespace: str
    uid: str
    generation: int


def step_job(
    owner: Owner,
    step: str,
    pod: dict[str, Any],
    pod_annotations: dict[str, str],
    *,
    backoff_limit: int,
    deadline_seconds: int,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    hash_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Job of one step. Its name hashes everything that goes into the pod (plus `hash_extra`), so a
    changed step gets a new Job (the old one is stale and deleted) and an unchanged one keeps its Job across
    generations and operator restarts."""
    job_spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": deadline_seconds,
        # Exit code 2 means bad input: retrying cannot help, so fail the Job at once.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": step, "operator": "In", "values": [EXIT_BAD_INPUT]},
                }
            ]
        },
    }
    spec_hash = digest({"pod": pod, "job": job_spec, "annotations": pod_annotations, **(hash_extra or {})})
    all_labels = standard_labels(owner.name, step) | (labels or {})
    template_meta: dict[str, Any] = {"labels": dict(all_labels)}
    if pod_annotations:
        template_meta["annotations"] = pod_annotations
    job_spec["template"] = {"metadata": template_meta, "spec": pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_name(owner.name, step, spec_hash),
            "namespace": owner.namespace,
            "labels": all_labels,
            "annotations": {
                **(annotations or {}),
                ANNOTATION_GENERATION: str(owner.generation),
                ANNOTATION_HASH: spec_hash,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "BModelBuild",
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
