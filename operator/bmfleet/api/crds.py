"""The CRDs bmfleet serves, generated from the models (the single source of truth)."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec, BModelBuildStatus
from bmfleet.api.common import GROUP, VERSION
from bmfleet.api.crdgen import CRDSpec, PrinterColumn, build_crd, dump_yaml

BMODELBUILD = CRDSpec(
    group=GROUP,
    kind="BModelBuild",
    plural="bmodelbuilds",
    singular="bmodelbuild",
    version=VERSION,
    short_names=("bmb",),
    categories=("bmfleet",),
    description="A model compiled to one combined SOPHGO bmodel (one stage per input shape), gated on "
    "precision and optionally rolled out to edge devices.",
    printer_columns=(
        PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', "Ready condition"),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Compiling, Compiled, Failed or Stalled"),
        PrinterColumn("Chip", "string", ".spec.chip", "Target chip"),
        PrinterColumn("Shapes", "string", ".status.shapesReady", "Compiled stages out of all stages"),
        PrinterColumn("Toolchain", "string", ".spec.toolchain.name", "Compiler", priority=1),
        PrinterColumn("Precision", "string", ".spec.precision", "Precision", priority=1),
        PrinterColumn(
            "Reason",
            "string",
            '.status.conditions[?(@.type=="Ready")].reason',
            "Why Ready is what it is",
            priority=1,
        ),
    ),
)


def all_crds() -> list[dict[str, Any]]:
    """Every CRD, in a stable order."""
    return [build_crd(BMODELBUILD, BModelBuildSpec, BModelBuildStatus)]


def crd_filename(crd: dict[str, Any]) -> str:
    """`<group>_<plural>.yaml`, as controller-gen names them."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def all_crds_yaml() -> str:
    """All CRDs as one multi-document YAML stream (what `bmfleet crds` prints)."""
    return dump_yaml(all_crds())
