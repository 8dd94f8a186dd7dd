"""The docs site builds offline with `mkdocs build --strict`, and the argocd-cm snippet it shows is valid YAML
that carries the chart's health script byte for byte."""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.helpers.argocd import script


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(out)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _code_blocks(page: Path) -> list[str]:
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", page.read_text(), flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", b)) for b in blocks]


def test_every_nav_page_is_built(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!relative $config_dir", "."))["nav"]
    pages = []

    def collect(items):
        for item in items:
            for value in item.values():
                collect(value) if isinstance(value, list) else pages.append(value)

    collect(nav)
    assert "reference/crds.md" in pages and "operations/gitops.md" in pages
    for page in pages:
        assert (site / page.removesuffix(".md").removesuffix("index") / "index.html").is_file(), page


def test_argocd_cm_snippet_carries_the_health_script(site):
    (block,) = [b for b in _code_blocks(site / "operations" / "gitops" / "index.html") if "kind: ConfigMap" in b]
    cm = yaml.safe_load(block)
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"]["resource.customizations.health.bmfleet.io_BModelBuild"] == script("BModelBuild")


def test_nothing_is_fetched_from_the_internet(site):
    """Offline build: no web fonts, no social cards, no CDN scripts in the pages."""
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', text), page
