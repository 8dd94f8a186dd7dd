"""Offline chart checks: `helm lint --strict`, `helm template` (with the CRDs) piped to
`kubernetes-validate --strict` for Kubernetes 1.36 (the sandbox's version), and values.yaml against
values.schema.json with check-jsonschema. Each check is also shown to fail on a broken input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHART = ROOT / "charts" / "bmfleet"
K8S = "1.36.0"
BIN = Path(sys.executable).parent
NAMESPACED = ["--set", "watchNamespaces[0]=team-a", "--set", "watchNamespaces[1]=team-b"]


def _helm() -> Path | None:
    cache = ROOT / os.environ.get("BMFLEET_CACHE", ".cache")
    found = sorted(cache.glob("helm-*/bin/helm"))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def helm() -> Path:
    path = _helm()
    if path is None:
        pytest.skip("helm is not built: run `make controlplane` (hack/build-helm.sh builds it into $BMFLEET_CACHE)")
    return path


def run(*args, stdin=None):
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("values", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_helm_lint_strict(helm, values):
    out = run(helm, "lint", "--strict", CHART, *values)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def _template(helm, *values):
    out = run(helm, "template", "bmfleet", CHART, "--namespace", "bmfleet-system", "--include-crds", *values)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _validate(manifests):
    return run(BIN / "kubernetes-validate", "--strict", "-k", K8S, "-", stdin=manifests)


@pytest.mark.parametrize("values", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_rendered_manifests_validate_strictly(helm, values):
    out = _validate(_template(helm, *values))
    assert out.returncode == 0, out.stdout + out.stderr
    passed = out.stdout + out.stderr
    for kind in ("customresourcedefinition/bmodelbuilds.bmfleet.io", "deployment/bmfleet-operator", "clusterrole/"):
        assert f"passed for resource {kind}" in passed, passed
    assert "did not validate" not in passed and "Couldn't find schema" not in passed


def test_kubernetes_validate_rejects_an_unknown_field(helm):
    broken = _template(helm).replace("enableServiceLinks: false", "enableServiceLinks: false\n      replicaz: 3")
    out = _validate(broken)
    assert out.returncode != 0 and "'replicaz' was unexpected" in out.stdout + out.stderr


def _check_values(values_file):
    return run(BIN / "check-jsonschema", "--schemafile", CHART / "values.schema.json", values_file)


def test_values_yaml_matches_values_schema():
    out = _check_values(CHART / "values.yaml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_values_schema_rejects_a_typo(tmp_path):
    bad = tmp_path / "values.yaml"
    bad.write_text((CHART / "values.yaml").read_text().replace("pullPolicy: IfNotPresent", "pullPolicy: Sometimes"))
    out = _check_values(bad)
    assert out.returncode != 0 and "Sometimes" in out.stdout + out.stderr
