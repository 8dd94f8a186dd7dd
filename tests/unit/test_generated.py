"""One source of truth: models -> crds/ -> chart. These fail when any of them drifts."""

from pathlib import Path

import pytest
import yaml

from bmfleet.api.crdgen import assert_structural
from bmfleet.api.crds import all_crds
from bmfleet.cli.generate import cluster_role_template, generated_files
from bmfleet.controllers.rbac import RULES
from tests.conftest import ROOT


def test_committed_generated_files_match_the_code():
    stale = [
        str(p.relative_to(ROOT)) for p, text in generated_files(ROOT).items() if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"run `bmfleet generate`: {stale}"


def test_chart_crds_equal_crds_dir():
    for path in (ROOT / "crds").glob("*.yaml"):
        assert (ROOT / "charts" / "bmfleet" / "crds" / path.name).read_text() == path.read_text()


def test_crd_is_structural_with_cel_status_and_printer_columns():
    crd = all_crds()[0]
    assert [c["spec"]["names"]["kind"] for c in all_crds()] == ["BModelBuild", "EdgeDevice", "BModelRollout"]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert_structural(schema, crd_root=True)
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["bmb"]
    assert [c["name"] for c in version["additionalPrinterColumns"]][:5] == [
        "Ready",
        "Phase",
        "Chip",
        "Shapes",
        "Toolchain",
    ]
    spec = schema["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("calibration" in r for r in rules) and any("umodel" in r for r in rules)
    assert spec["properties"]["compile"]["properties"]["opt"] == {
        "type": "integer",
        "description": "Optimisation level 0, 1 or 2 (bmnetu -opt).",
        "default": 2,
        "maximum": 2,
        "minimum": 0,
    }
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("kind", ["BModelBuild", "EdgeDevice", "BModelRollout"])
def test_every_schema_node_has_a_description_for_kubectl_explain(kind):
    crd = next(c for c in all_crds() if c["spec"]["names"]["kind"] == kind)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing = []

    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            for name, child in node["properties"].items():
                if not child.get("description"):
                    missing.append(f"{path}.{name}")
                walk(child, f"{path}.{name}")
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(spec, "spec")
    assert not missing


def test_rbac_has_no_wildcards_and_template_carries_every_rule():
    for rule in RULES:
        assert "*" not in rule.verbs and "*" not in rule.resources and rule.api_group != "*"
        assert rule.why
    rendered = cluster_role_template()
    body = yaml.safe_load("\n".join(line for line in rendered.splitlines() if "{{" not in line))
    assert body["rules"] == [
        {"apiGroups": [r.api_group], "resources": list(r.resources), "verbs": list(r.verbs)} for r in RULES
    ]


def test_examples_validate_against_the_models():
    from bmfleet.api.build import BModelBuildSpec

    for path in Path(ROOT / "docs" / "examples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "BModelBuild":
                BModelBuildSpec.model_validate(doc["spec"])
