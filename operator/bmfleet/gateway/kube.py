"""The few Kubernetes calls the gateway makes, on EdgeDevices as plain dicts (CustomObjectsApi), in one place.

Everything here blocks; the server calls it from worker threads. Writes to status are JSON merge patches on the
status subresource; a write that must not race another one (credentials) carries a resourceVersion precondition.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client

from bmfleet.gateway.view import GROUP, KIND, PLURAL, VERSION

MERGE = "application/merge-patch+json"


class GoneError(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Kube:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        # Any: the type stubs describe an older client (no _preload_content, _content_type, return values).
        self.custom: Any = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}  # verb -> count (what the gateway costs the API server)
        self.on_call: Callable[[str], None] | None = None

    def _count(self, verb: str) -> None:
        with self._lock:
            self.calls[verb] = self.calls.get(verb, 0) + 1
        if self.on_call is not None:
            self.on_call(verb)

    def list_devices(self) -> tuple[list[dict[str, Any]], str]:
        self._count("list")
        resp = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, _preload_content=False, _request_timeout=60
        )
        doc = json.loads(resp.data)
        return list(doc.get("items") or []), str(doc["metadata"]["resourceVersion"])

    def watch_devices(self, rv: str, timeout: int, holder: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events after `rv` until the server ends the watch (`timeout` s). BOOKMARKs are yielded (they move rv);
        a 410 raises GoneError. `holder` receives the response so another thread can shut it down."""
        self._count("watch")
        resp = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, watch=True, resource_version=rv, allow_watch_bookmarks=True,
            timeout_seconds=timeout, _preload_content=False, _request_timeout=(10, timeout + 30),
        )  # fmt: skip
        holder[:] = [resp]
        buf = b""
        try:
            for chunk in resp.stream(1 << 16, decode_content=True):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise GoneError(obj.get("message", "gone"))
                        raise client.ApiException(status=obj.get("code", 500), reason=obj.get("message", ""))
                    yield str(ev.get("type")), obj
        finally:
            resp.release_conn()

    def get_device(self, name: str) -> dict[str, Any] | None:
        self._count("get")
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return obj

    def create_device(self, name: str, chip: str, labels: dict[str, str]) -> dict[str, Any]:
        self._count("create")
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {"chip": chip},
        }
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        return obj

    def patch_status(self, name: str, status: dict[str, Any], rv: str | None = None) -> dict[str, Any]:
        """Merge-patch status; with `rv`, fail with 409 if the object changed since."""
        self._count("patch")
        body: dict[str, Any] = {"status": status}
        if rv is not None:
            body["metadata"] = {"resourceVersion": rv}
        obj: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, body, _content_type=MERGE, _request_timeout=30
        )
        return obj

    def read_secret(self, name: str) -> dict[str, bytes]:
        self._count("get")
        secret = self.core.read_namespaced_secret(name, self.namespace, _request_timeout=30)
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
