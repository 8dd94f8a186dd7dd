"""The few Kubernetes calls the controllers make, over the official client with one explicit ApiClient.

Every call here has a matching RBAC rule in `rbac.py`; a test renders the chart's role from that list.
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from bmfleet.api.common import GROUP, VERSION
from bmfleet.pipeline.names import LABEL_BUILD

BUILDS = "bmodelbuilds"


class NamespaceTerminatingError(Exception):
    """The namespace is being deleted: nothing can be created in it, and nothing needs to be."""


def make_api_client() -> ApiClient:
    """In a pod: the mounted ServiceAccount. Elsewhere: $KUBECONFIG (the same identity kopf logs in with)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config()
        return ApiClient()
    api: ApiClient = kube_config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    return api


def get_object(kube: Kube, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    """One bmfleet object, or None when there is none of that name."""
    try:
        body: dict[str, Any] = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return body


class Kube:
    """Thin typed wrapper; returns plain dicts (camelCase, as on the wire) so pipeline code stays client-free."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.core = CoreV1Api(client)
        self.batch = BatchV1Api(client)
        self.custom = CustomObjectsApi(client)

    def _plain(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.client.sanitize_for_serialization(obj)
        return out

    def patch_build_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, BUILDS, name, {"status": status})

    def list_jobs(self, namespace: str, build: str, owner_uid: str) -> dict[str, dict[str, Any]]:
        """The build's Jobs by name; Jobs of an older object with the same name (another uid) are ignored."""
        jobs = self.batch.list_namespaced_job(namespace, label_selector=f"{LABEL_BUILD}={build}")
        out = {}
        for job in jobs.items:
            plain = self._plain(job)
            owners = plain["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == owner_uid for o in owners):
                out[plain["metadata"]["name"]] = plain
        return out

    def latest_pods(self, namespace: str, build: str) -> dict[str, dict[str, Any]]:
        """The newest pod of each of the build's Jobs, by Job name (their termination messages carry results)."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_BUILD}={build}")
        out: dict[str, dict[str, Any]] = {}
        plain_pods = [self._plain(p) for p in pods.items]
        for plain in sorted(plain_pods, key=lambda p: str(p["metadata"].get("creationTimestamp", ""))):
            job = (plain["metadata"].get("labels") or {}).get("job-name")
            if job:
                out[job] = plain
        return out

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create, or return the existing Job of that name: (job, created)."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            # The client accepts plain dicts (it serialises them as-is); its stubs only name V1Job.
            return self._plain(self.batch.create_namespaced_job(ns, manifest)), True  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 403 and "NamespaceTerminating" in str(exc.body):
                raise NamespaceTerminatingError(ns) from exc
            if exc.status != 409:
                raise
        return self._plain(self.batch.read_namespaced_job(name, ns)), False

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; gone already is fine."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def pvc_exists(self, namespace: str, claim: str) -> bool:
        try:
            self.core.read_namespaced_persistent_volume_claim(claim, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
