"""The operator's Grafana dashboard, built with grafana-foundation-sdk's typed builders (so a panel option
that Grafana does not know fails here, not in a browser) over the metrics `controllers.metrics` defines.

    python -m bmfleet.cli.dashboard [--root .]    # writes charts/bmfleet/dashboards/bmfleet.json

`bmfleet generate` writes it too, and `bmfleet generate --check` fails when it drifts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PATH = Path("charts") / "bmfleet" / "dashboards" / "bmfleet.json"
UID = "bmfleet-operator"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


def query(expr: str, legend: str, ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return q.instant() if instant else q.range()


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def graph(
    title: str, description: str, unit: str, *targets: prometheus.Dataquery, stacked: bool = False, width: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
    panel = panel.height(8).span(width).legend(_legend()).fill_opacity(10 if not stacked else 60)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def bars(title: str, description: str, *targets: prometheus.Dataquery, width: int = 12) -> bargauge.Panel:
    panel = bargauge.Panel().title(title).description(description).datasource(DATASOURCE).height(8).span(width)
    panel = panel.orientation(common_models.VizOrientation.HORIZONTAL).min(0)
    panel = panel.display_mode(common_models.BarGaugeDisplayMode.GRADIENT).show_unfilled(True)
    panel = panel.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def quantiles(metric: str, by: str) -> list[prometheus.Dataquery]:
    """p50 and p95 of a histogram, per `by`."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))",
            f"{{{{{by}}}}} p{round(q * 100)}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"))
    ]


def _cache_ratio() -> stat.Panel:
    ratio = (
        'sum(increase(bmfleet_compile_cache_total{result="hit"}[$__range])) '
        "/ sum(increase(bmfleet_compile_cache_total[$__range]))"
    )
    panel = stat.Panel().title("Compile cache hit ratio").datasource(DATASOURCE).unit("percentunit").min(0).max(1)
    panel = panel.description("Stages and combines with a store that the cache served, over the time range.")
    panel = panel.graph_mode(common_models.BigValueGraphMode.NONE).height(8).span(6)
    panel = panel.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return panel.with_target(query(ratio, "hit ratio", instant=True))


def sections() -> list[tuple[str, list[timeseries.Panel | bargauge.Panel | stat.Panel]]]:
    """Rows of panels: builds, steps and cache, gates, fleet, then the controller's own health."""
    phases = "sum by (phase) (bmfleet_builds)"
    steps = f"sum by (step) (rate(bmfleet_step_duration_seconds_count[{RATE}]))"
    failed = f'sum by (gate) (increase(bmfleet_gate_checks_total{{result="fail"}}[{RATE}]))'
    reconciles = f"sum by (controller, result) (rate(bmfleet_controller_reconcile_total[{RATE}]))"
    errors = f"sum by (controller) (rate(bmfleet_controller_reconcile_errors_total[{RATE}]))"
    return [
        (
            "Builds",
            [
                bars("Builds by phase", "BModelBuilds per status.phase now.", query(phases, "{{phase}}", instant=True)),
                graph(
                    "Builds over time",
                    "BModelBuilds per status.phase.",
                    "short",
                    query(phases, "{{phase}}"),
                    stacked=True,
                ),
            ],
        ),
        (
            "Pipeline steps",
            [
                graph(
                    "Step duration (p50, p95)",
                    "Wall time of the steps that succeeded (cache hits ran no Job and are not in it).",
                    "s",
                    *quantiles("bmfleet_step_duration_seconds", "step"),
                ),
                _cache_ratio(),
                graph("Steps finished", "Steps that succeeded per second.", "ops", query(steps, "{{step}}"), width=6),
            ],
        ),
        (
            "Precision gates",
            [
                graph(
                    "Gate delta (INT8 - FP32)",
                    "The last gate run's difference per metric, in percentage points; drops are negative.",
                    "none",
                    query("bmfleet_gate_delta_pp", "{{gate}} {{metric}}"),
                ),
                graph("Gate checks failed", "Failed checks per gate.", "short", query(failed, "{{gate}}")),
                graph(
                    "Gate metrics, INT8 and FP32",
                    "The last gate run's value per metric and model.",
                    "none",
                    query("bmfleet_gate_metric", "{{gate}} {{metric}} {{model}}"),
                    width=24,
                ),
            ],
        ),
        (
            "Fleet",
            [
                graph(
                    "Rollout devices by state",
                    "Devices of all rollouts, by rollout state.",
                    "short",
                    query("sum by (state) (bmfleet_rollout_devices)", "{{state}}"),
                    stacked=True,
                ),
                graph(
                    "Fleet devices by state and chip",
                    "EdgeDevices by state and chip.",
                    "short",
                    query("sum by (state, chip) (bmfleet_fleet_devices)", "{{state}} {{chip}}"),
                    stacked=True,
                ),
            ],
        ),
        (
            "Controller",
            [
                graph(
                    "Reconciles",
                    "Per second, by result.",
                    "ops",
                    query(reconciles, "{{controller}} {{result}}"),
                    width=8,
                ),
                graph(
                    "Reconcile errors",
                    "Reconciles that raised, per second.",
                    "ops",
                    query(errors, "{{controller}}"),
                    width=8,
                ),
                graph(
                    "Reconcile time (p50, p95)",
                    "Time per reconcile.",
                    "s",
                    *quantiles("bmfleet_controller_reconcile_time_seconds", "controller"),
                    width=8,
                ),
            ],
        ),
    ]


def build_dashboard() -> Dashboard:
    """The dashboard: a Prometheus data source variable and the rows of `sections`."""
    board = (
        Dashboard("bmfleet")
        .uid(UID)
        .description("bmfleet operator: builds, pipeline steps, precision gates and the edge fleet.")
        .tags(["bmfleet", "kubernetes", "operator"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for title, panels in sections():
        board = board.with_row(Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


def dashboard_json() -> str:
    """The dashboard as Grafana imports it (stable key order, so the generated file diffs cleanly), every
    panel and row with its own id (the builders leave rows at 0 and panels without)."""
    model = build_dashboard().build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmfleet.cli.dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--root", default=".", help="repository root")
    args = p.parse_args(argv)
    path = Path(args.root) / PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dashboard_json())
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
