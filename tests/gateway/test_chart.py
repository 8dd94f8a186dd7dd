"""The chart's gateway: off by default; when on, a stateless Deployment with TLS and probes on the admin port, a
Service, an optional Ingress with TLS, and a Role that grants exactly what the gateway uses (no wildcards)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from bmfleet.cli.devenv import render_chart
from tests.conftest import ROOT

ON = {
    "gateway.enabled": "true", "gateway.replicas": "3", "gateway.namespace": "devices",
    "gateway.ingress.enabled": "true", "gateway.ingress.host": "gw.example.com",
    "gateway.storeClaims[0]": "artifacts", "gateway.storeUris[0]": "pvc://artifacts/builds",
    "gateway.storeCredentialsSecret": "registry-creds",
}  # fmt: skip


def _by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_gateway_is_off_by_default() -> None:
    assert not [d for d in render_chart(ROOT) if "gateway" in d["metadata"]["name"]]


def test_gateway_renders_least_privilege_and_restricted() -> None:
    docs = _by_kind(render_chart(ROOT, **ON))
    role = docs[("Role", "bmfleet-gateway")]
    assert role["metadata"]["namespace"] == "devices"
    assert role["rules"] == [
        {"apiGroups": ["bmfleet.io"], "resources": ["edgedevices"], "verbs": ["get", "list", "watch", "create"]},
        {"apiGroups": ["bmfleet.io"], "resources": ["edgedevices/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["bmfleet-bootstrap"], "verbs": ["get"]},
    ]
    binding = docs[("RoleBinding", "bmfleet-gateway")]
    assert binding["metadata"]["namespace"] == "devices"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bmfleet-gateway", "namespace": "bmfleet-system"}]
    dep = docs[("Deployment", "bmfleet-gateway")]
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "bmfleet-gateway" and pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }
    assert c["args"][:2] == ["gateway", "--namespace=devices"]
    assert "--store-uri=pvc://artifacts/builds" in c["args"] and "--tls-cert=/run/bmfleet/tls/tls.crt" in c["args"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    claims = {v["name"]: v for v in pod["volumes"]}
    assert claims["claim-artifacts"]["persistentVolumeClaim"] == {"claimName": "artifacts", "readOnly": True}
    ingress = docs[("Ingress", "bmfleet-gateway")]
    assert ingress["spec"]["tls"] == [{"hosts": ["gw.example.com"], "secretName": "bmfleet-gateway-tls"}]
    svc = docs[("Service", "bmfleet-gateway")]
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {"https": "https", "metrics": "admin"}


def test_gateway_manifests_validate_strictly() -> None:
    docs = render_chart(ROOT, **ON)
    validate = Path(sys.executable).parent / "kubernetes-validate"
    out = subprocess.run(
        [str(validate), "--strict", "-k", "1.36.0", "-"], input=yaml.safe_dump_all(docs), capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    for kind in ("deployment/bmfleet-gateway", "role/bmfleet-gateway", "ingress/bmfleet-gateway"):
        assert f"passed for resource {kind}" in out.stdout + out.stderr
