"""The Grafana dashboard: Grafana's typed model (as grafana-foundation-sdk carries it) reads it back unchanged,
and every query asks only for series and labels the operator exposes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
from prometheus_client import CollectorRegistry

from bmfleet.cli.dashboard import PATH, dashboard_json
from bmfleet.controllers.metrics import Metrics
from tests.conftest import ROOT

OPTIONS = {"timeseries": timeseries.Options, "bargauge": bargauge.Options, "stat": stat.Options}
SERIES = re.compile(r"\b(bmfleet_[a-z0-9_]+)")
BY = re.compile(r"\bby \(([^)]*)\)")
MATCHERS = re.compile(r"\{([^}]*)\}")


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dashboard_json())
    return data


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_the_committed_file_is_what_the_code_builds(board: dict[str, Any]) -> None:
    assert json.loads((ROOT / PATH).read_text()) == board


def test_grafanas_model_reads_it_back_unchanged(board: dict[str, Any]) -> None:
    register_default_plugins()
    model = Dashboard.from_json(board)
    # Fields the typed model does not know would be dropped here, and the comparison would fail.
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == board
    panels = [p for p in model.panels or [] if isinstance(p, Panel)]
    assert len(panels) == len(_panels(board)) and len(model.panels or []) - len(panels) == 5
    assert all(isinstance(p, RowPanel) for p in model.panels or [] if not isinstance(p, Panel))
    for panel in panels:
        assert isinstance(panel.options, OPTIONS[panel.type_val]), panel.title
        assert panel.targets and all(isinstance(t, prometheus.Dataquery) for t in panel.targets), panel.title
    ids = [p.id_val for p in model.panels or []]
    assert len(set(ids)) == len(ids) and None not in ids


def test_panels_tile_the_grid_without_overlap(board: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_every_query_uses_series_and_labels_the_operator_exposes(board: dict[str, Any]) -> None:
    exposed = Metrics(CollectorRegistry()).sample_names()
    used: set[str] = set()
    for panel in _panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            series = SERIES.findall(expr)
            assert series, expr
            unknown = [s for s in series if s not in exposed]
            assert not unknown, f"{panel['title']}: {unknown} not defined in bmfleet.controllers.metrics"
            labels = {label for s in series for label in exposed[s]}
            asked = {name.strip() for group in BY.findall(expr) for name in group.split(",")}
            asked |= {m.split("=")[0].strip() for group in MATCHERS.findall(expr) for m in group.split(",")}
            legend = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            assert asked | legend <= labels, f"{panel['title']}: {(asked | legend) - labels} not labels of {series}"
            used |= set(series)
    # The dashboard shows every family except the version info.
    families = {s.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for s in used}
    assert {n for n in Metrics(CollectorRegistry()).catalogue if n != "bmfleet_build_info"} <= families
