"""The CRDs bmfleet serves, generated from the models (the single source of truth)."""

from __future__ import annotations

from typing import Any

from bmfleet.api.build import BModelBuildSpec, BModelBuildStatus
from bmfleet.api.common import GROUP, VERSION
from bmfleet.api.crdgen import CRDSpec, PrinterColumn, build_crd, dump_yaml
from bmfleet.api.device import EdgeDeviceSpec, EdgeDeviceStatus
from bmfleet.api.rollout import BModelRolloutSpec, BModelRolloutStatus

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

EDGEDEVICE = CRDSpec(
    group=GROUP,
    kind="EdgeDevice",
    plural="edgedevices",
    singular="edgedevice",
    version=VERSION,
    short_names=("ed",),
    categories=("bmfleet",),
    description="One SOPHON SoC box: what it should run (spec.desired, written by rollouts) and what it runs "
    "(status, written by the gateway from the agent's reports).",
    printer_columns=(
        PrinterColumn("Chip", "string", ".spec.chip", "SOPHON chip"),
        PrinterColumn("Online", "string", '.status.conditions[?(@.type=="Online")].status', "Heartbeat is recent"),
        PrinterColumn("Models", "string", ".status.models[*].name", "Models on the device"),
        PrinterColumn("Last seen", "date", ".status.lastSeen", "Last report or poll"),
        PrinterColumn("Active", "string", ".status.models[*].activeDigest", "Active digests", priority=1),
        PrinterColumn("Site", "string", ".spec.site", "Where the box is", priority=1),
    ),
)

BMODELROLLOUT = CRDSpec(
    group=GROUP,
    kind="BModelRollout",
    plural="bmodelrollouts",
    singular="bmodelrollout",
    version=VERSION,
    short_names=("bmr",),
    categories=("bmfleet",),
    description="A bmodel rolled out to the EdgeDevices a label selector picks, in phases, with an in-flight "
    "limit, per-device timeouts and automatic abort and rollback.",
    printer_columns=(
        PrinterColumn("Phase", "string", ".status.phase", "Progressing, Paused, Completed, Aborted, RolledBack"),
        PrinterColumn("Current phase", "integer", ".status.currentPhase", "Index of the current phase"),
        PrinterColumn("Active", "integer", ".status.counts.active", "Devices running the artifact"),
        PrinterColumn("Failed", "integer", ".status.counts.failed", "Devices that failed or timed out"),
        PrinterColumn("Skipped", "integer", ".status.counts.skipped", "Selected devices of another chip"),
        PrinterColumn("Targeted", "integer", ".status.counts.targeted", "Devices assigned", priority=1),
        PrinterColumn("Digest", "string", ".status.artifact.digest", "The artifact", priority=1),
        PrinterColumn(
            "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', "Why Ready is what it is", priority=1
        ),
    ),
)


def all_crds() -> list[dict[str, Any]]:
    """Every CRD, in a stable order."""
    return [
        build_crd(BMODELBUILD, BModelBuildSpec, BModelBuildStatus),
        build_crd(EDGEDEVICE, EdgeDeviceSpec, EdgeDeviceStatus),
        build_crd(BMODELROLLOUT, BModelRolloutSpec, BModelRolloutStatus),
    ]


def crd_filename(crd: dict[str, Any]) -> str:
    """`<group>_<plural>.yaml`, as controller-gen names them."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def all_crds_yaml() -> str:
    """All CRDs as one multi-document YAML stream (what `bmfleet crds` prints)."""
    return dump_yaml(all_crds())
