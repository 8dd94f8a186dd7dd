"""Shared by the gateway tests and bench/rollout.py: a TLS certificate for 127.0.0.1, the EdgeDevice CRD (the
generated one when it exists, else a minimal stand-in), the gateway's identity as the chart renders it, and
helpers that write spec.desired the way the rollout controller will."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import json
import ssl
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from bmfleet.cli.devenv import kubectl, render_chart
from bmfleet.sandbox.controlplane import Sandbox, find_repo_root, token_kubeconfig

GROUP, VERSION, PLURAL = "bmfleet.io", "v1alpha1", "edgedevices"
BOOTSTRAP_SECRET = "bmfleet-bootstrap"

# Until the EdgeDevice API lands in bmfleet.api, a stand-in with the same names and a status subresource.
MINIMAL_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "edgedevices.bmfleet.io"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": "EdgeDevice", "plural": PLURAL, "singular": "edgedevice", "shortNames": ["ed"],
                  "categories": ["bmfleet"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}  # fmt: skip


def ensure_edgedevice_crd(sandbox: Sandbox) -> None:
    """The generated CRD if bmfleet.api has it (install_crds applied it already), else the stand-in."""
    found = kubectl(sandbox, "get", "crd", "edgedevices.bmfleet.io", "-o", "name", check=False)
    if "customresourcedefinition" not in found:
        kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump(MINIMAL_CRD))
    kubectl(sandbox, "wait", "--for=condition=Established", "--timeout=60s", "crd/edgedevices.bmfleet.io")


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, key) for 127.0.0.1: ECDSA P-256, as cheap to handshake as it gets."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmfleet gateway test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmfleet-gateway")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "gateway.pem", directory / "gateway.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths[2].write_bytes(pem)
    paths[2].chmod(0o600)
    return paths


def install_gateway_identity(sandbox: Sandbox, namespace: str, workdir: Path) -> Path:
    """The chart's gateway ServiceAccount, Role and RoleBinding (as `helm template` renders them, with the gateway
    serving `namespace`), and a kubeconfig with a TokenRequest token for it: the gateway runs with exactly the
    chart's rights, never as admin."""
    docs = render_chart(find_repo_root(), namespace, **{"gateway.enabled": "true"})
    identity = [
        d for d in docs
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding") and d["metadata"]["name"].endswith("-gateway")
    ]  # fmt: skip
    kubectl(sandbox, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(identity))
    sa = next(d for d in identity if d["kind"] == "ServiceAccount")["metadata"]["name"]
    return token_kubeconfig(sandbox, namespace, sa, workdir / "gateway.kubeconfig")


def create_bootstrap_secret(api: client.ApiClient, namespace: str, token: str) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=BOOTSTRAP_SECRET), string_data={"token": token})
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)


def metric(gateway: Any, name: str, **labels: str) -> float:
    """A sample of a running gateway's Prometheus registry (0 when the series does not exist yet)."""
    return float(gateway.gateway.metrics.registry.get_sample_value(name, labels) or 0.0)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(store_root: Path, data: bytes) -> str:
    """Write a blob into a file store (`<root>/blobs/sha256/<hex>`); returns its digest."""
    digest = digest_of(data)
    path = store_root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def desired_entry(name: str, data: bytes, store_uri: str, chip: str = "BM1684", **extra: Any) -> dict[str, Any]:
    """One spec.desired.models entry in the contract's form (what the rollout controller writes)."""
    digest = digest_of(data)
    uri = f"{store_uri}/blobs/sha256/{digest.removeprefix('sha256:')}"
    return {"name": name, "action": "install", "digest": digest, "size": len(data), "chip": chip, "uri": uri,
            "rollout": extra.pop("rollout", name), "generation": extra.pop("generation", 1), **extra}  # fmt: skip


class Devices:
    """EdgeDevices in one namespace through the admin client (the tests play the rollout controller)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom: Any = client.CustomObjectsApi(api)
        self.namespace = namespace

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return obj

    def list(self) -> list[dict[str, Any]]:
        out = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        return list(out["items"])

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}, _content_type="application/merge-patch+json"
        )
        return obj

    def set_desired(self, name: str, models: list[dict[str, Any]], version: int | None = None) -> int:
        """Write spec.desired with the version bumped (read first unless the caller knows it), as the rollout
        controller does."""
        if version is None:
            current = (self.get(name).get("spec") or {}).get("desired") or {}
            version = int(current.get("version", 0)) + 1
        self.patch_spec(name, {"desired": {"version": version, "models": models}})
        return version

    def model_status(self, name: str, model: str) -> dict[str, Any] | None:
        status = self.get(name).get("status") or {}
        return next((m for m in status.get("models") or [] if m.get("name") == model), None)


class Client:
    """Raw HTTPS requests to a gateway (what a device, or an attacker holding one device's token, can send)."""

    def __init__(self, url: str, ca: Path) -> None:
        self.host, _, port = url.removeprefix("https://").partition(":")
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=str(ca))

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def register(self, bootstrap: str, device: str, chip: str = "BM1684", **labels: str) -> str:
        status, _, body = self.request("POST", "/v1/register", bootstrap, {"deviceId": device, "chip": chip,
                                                                             "labels": labels})  # fmt: skip
        assert status in (200, 201), body
        token: str = json.loads(body)["token"]
        return token
