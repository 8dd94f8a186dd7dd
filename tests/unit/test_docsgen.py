"""docs/reference/crds.md is generated from the CRDs: it must be current and cover every field and rule."""

import copy

import pytest

from bmfleet.api.crds import all_crds
from bmfleet.cli import docsgen
from tests.conftest import ROOT

PAGE = ROOT / docsgen.PAGE


def test_committed_page_is_current():
    assert PAGE.read_text() == docsgen.render_crd_reference(), "stale: run `python -m bmfleet.cli.docsgen`"


def test_check_mode_fails_on_a_stale_page(tmp_path):
    (tmp_path / docsgen.PAGE).parent.mkdir(parents=True)
    (tmp_path / docsgen.PAGE).write_text("old\n")
    assert docsgen.main(["--root", str(tmp_path), "--check"]) == 1
    assert docsgen.main(["--root", str(tmp_path)]) == 0
    assert docsgen.main(["--root", str(tmp_path), "--check"]) == 0


def test_a_schema_change_changes_the_page(monkeypatch):
    crd, *others = all_crds()
    changed = copy.deepcopy(crd)
    spec = changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["chip"]["description"] = "A brand new description."
    monkeypatch.setattr(docsgen, "all_crds", lambda: [changed, *others])
    assert "A brand new description." in docsgen.render_crd_reference()
    assert docsgen.render_crd_reference() != PAGE.read_text()


def _leaf_paths(node, path):
    yield path
    for name, child in (node.get("properties") or {}).items():
        yield from _leaf_paths(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _leaf_paths(node["items"], f"{path}[]")


@pytest.mark.parametrize("top", ["spec", "status"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_field_has_a_row_with_its_description(top, index):
    crd = all_crds()[index]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][top]
    page = PAGE.read_text()
    section = page.split(f"\n## {crd['spec']['names']['kind']}\n")[1].split("\n## ")[0]
    for path in _leaf_paths(schema, top):
        assert f"| `{path}` |" in section, path


def test_every_cel_rule_and_message_is_listed():
    page = PAGE.read_text()
    found = 0
    for crd in all_crds():
        for _, node, _ in docsgen.walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], ""):
            for rule in node.get("x-kubernetes-validations", []):
                assert docsgen.code(rule["rule"]) in page
                assert docsgen.text(rule["message"]) in page
                found += 1
    assert found >= 15


def test_cells_cannot_break_the_table():
    assert docsgen.code("a || b [c](d)") == "`a || b [c](d)`"
    assert docsgen.code("a`b") == "`` a`b ``"
    assert docsgen.text("x_y *z* <p> | `a|b`") == r"x\_y \*z\* &lt;p&gt; &#124; `a|b`"
    row = next(
        r
        for r in docsgen.rows(all_crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
        if r.path == ".spec.model.uri"
    )
    assert row.type == "string" and "**required**" in row.validations
    assert "pattern `^(https?|file|pvc|oci|s3)://[^\\s]+$`" in row.validations
    assert row.validations.count("length 8..2048") == 1


def test_types_and_defaults_render():
    page = PAGE.read_text()
    assert "| `spec.shapes[].inputs` | `[][]integer` |" in page
    assert "| `spec.placement.nodeSelector` | `map[string]string` |" in page
    assert '`{"cpu": "1", "memory": "2Gi"}`' in page
    assert "one of `BM1684`, `BM1684X`" in page
