"""The chart renders and lints with the real helm (built from the Go module proxy), and what it renders is
least-privilege and passes Pod Security `restricted`."""

import subprocess

import pytest
import yaml

from bmfleet.cli.devenv import helm_binary, render_chart
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def helm():
    return helm_binary(ROOT)


def test_helm_lint(helm):
    out = subprocess.run(
        [str(helm), "lint", "--strict", str(ROOT / "charts" / "bmfleet")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_values_schema_rejects_unknown_values(helm):
    out = subprocess.run(
        [str(helm), "template", "x", str(ROOT / "charts" / "bmfleet"), "--set", "replicas=3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0 and "additional properties 'replicas' not allowed" in out.stderr


def test_rendered_chart_is_least_privilege_and_restricted():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render_chart(ROOT)}
    role = docs[("ClusterRole", "bmfleet-operator")]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    dep = docs[("Deployment", "bmfleet-operator")]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["args"][0] == "operator" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    binding = docs[("ClusterRoleBinding", "bmfleet-operator")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bmfleet", "namespace": "bmfleet-system"}]


def test_namespaced_mode_renders_role_bindings_only():
    docs = render_chart(ROOT, **{"watchNamespaces[0]": "team-a", "watchNamespaces[1]": "team-b"})
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in docs]
    assert ("RoleBinding", "team-a") in kinds and ("RoleBinding", "team-b") in kinds
    assert not any(k == "ClusterRoleBinding" for k, _ in kinds)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert "--namespace=team-a" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert yaml.safe_dump(docs)  # serialisable
