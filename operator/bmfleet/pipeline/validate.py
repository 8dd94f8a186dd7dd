"""Semantic validation: what the CRD schema and CEL cannot say. Each problem names the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.shapes import ShapeError, StageShapes, batch_size, format_shapes
from bmfleet.store import check_store_uri


@dataclass(frozen=True)
class Problem:
    """One reason the build cannot proceed; `reason` is a CamelCase condition reason."""

    field: str
    message: str
    reason: str = "InvalidSpec"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def parse_spec(raw: dict[str, Any]) -> tuple[BModelBuildSpec | None, list[Problem]]:
    """Parse the stored spec; a schema mismatch (e.g. an older CRD) becomes problems, not a crash."""
    try:
        return BModelBuildSpec.model_validate(raw), []
    except ValidationError as exc:
        problems = [Problem("spec." + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()[:10]]
        return None, problems


def resolve_stages(spec: BModelBuildSpec) -> tuple[list[StageShapes], list[Problem]]:
    """Every stage in list form, plus what is wrong across stages."""
    stages: list[StageShapes] = []
    problems: list[Problem] = []
    for i, stage in enumerate(spec.shapes):
        try:
            stages.append(stage.resolved())
        except ShapeError as exc:
            problems.append(Problem(f"spec.shapes[{i}]", str(exc)))
    if problems:
        return stages, problems
    first = len(stages[0])
    seen: dict[str, int] = {}
    for i, shapes in enumerate(stages):
        if len(shapes) != first:
            problems.append(
                Problem(
                    f"spec.shapes[{i}]",
                    f"has {len(shapes)} input shape(s) but spec.shapes[0] has {first}; every stage of one net "
                    "takes the same inputs",
                )
            )
        text = format_shapes(shapes)
        if text in seen:
            problems.append(
                Problem(f"spec.shapes[{i}]", f"{text} repeats spec.shapes[{seen[text]}]; stages must differ")
            )
        seen.setdefault(text, i)
        if spec.compile.max_n is not None and batch_size(shapes) > spec.compile.max_n:
            problems.append(
                Problem(
                    f"spec.shapes[{i}]",
                    f"batch {batch_size(shapes)} exceeds compile.maxN {spec.compile.max_n}",
                )
            )
    return stages, problems


def unsupported_fields(spec: BModelBuildSpec) -> list[Problem]:
    """Fields this release accepts in the schema but cannot act on yet. No field is silently ignored."""
    problems = _gate_problems(spec)
    store = spec.output.store if spec.output else None
    if store is not None:
        try:
            check_store_uri(store.type, store.uri)
        except ValueError as exc:
            problems.append(Problem("spec.output.store.uri", f"{exc} (a {store.type} store)"))
    for field_name, uri in input_uris(spec).items():
        if uri and uri.split("://", 1)[0] in ("oci", "s3"):
            problems.append(
                Problem(
                    field_name,
                    f"{uri}: oci:// and s3:// inputs need the artifact store, not available yet",
                    reason="NotImplemented",
                )
            )
    return problems


def _gate_problems(spec: BModelBuildSpec) -> list[Problem]:
    """Gates compare the combined model with the FP32 source on onnxruntime: they need both."""
    if spec.gates is None:
        return []
    problems = []
    if spec.output is None or spec.output.store is None:
        problems.append(Problem("spec.gates", "gates run on the combined bmodel: set spec.output.store"))
    if spec.model.format != "onnx":
        problems.append(
            Problem(
                "spec.gates",
                f"the FP32 reference runs the source model on onnxruntime; {spec.model.format} models cannot be gated "
                "yet",
                reason="NotImplemented",
            )
        )
    if spec.gates.similarity is not None and spec.calibration is None:
        problems.append(Problem("spec.gates.similarity", "compares on calibration samples: set spec.calibration"))
    return problems


def input_uris(spec: BModelBuildSpec) -> dict[str, str]:
    """Every input URI of the build (model, weights, calibration, gate datasets), by field name."""
    uris = {"spec.model.uri": spec.model.uri}
    if spec.model.weights_uri:
        uris["spec.model.weightsUri"] = spec.model.weights_uri
    if spec.calibration is not None:
        uris["spec.calibration.datasetUri"] = spec.calibration.dataset_uri
    gates = spec.gates
    if gates is not None and gates.classification is not None:
        uris["spec.gates.classification.datasetUri"] = gates.classification.dataset_uri
    if gates is not None and gates.detection is not None:
        uris["spec.gates.detection.annotationsUri"] = gates.detection.annotations_uri
        uris["spec.gates.detection.imagesUri"] = gates.detection.images_uri
    return uris


def referenced_claims(spec: BModelBuildSpec) -> dict[str, str]:
    """PersistentVolumeClaims the inputs live on (`pvc://<claim>/<path>`), by field name."""
    uris: dict[str, str | None] = dict(input_uris(spec))
    if spec.output is not None and spec.output.store is not None and spec.output.store.type == "pvc":
        uris["spec.output.store.uri"] = spec.output.store.uri
    return {
        f: uri.removeprefix("pvc://").split("/", 1)[0] for f, uri in uris.items() if uri and uri.startswith("pvc://")
    }
