"""INT8-vs-FP32 thresholds and the checks that apply them.

Defaults come from the SOPHGO model zoo's BM1684 numbers (docs/reference/anchors.md, "gate defaults"):
ResNet50 INT8 loses 1.4-2.0 pp top-1 and YOLOv5s 3.3-3.7 pp mAP@[.50:.95], so a drop up to 2.0 pp top-1 and
4.0 pp mAP passes (warn above 1.5 pp / 3.5 pp), and similarity uses TPU-MLIR's INT8 example
`--tolerance 0.85,0.45`. mAP enters checks in percent (37.7, not 0.377) so all deltas are percentage points.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bmfleet.gates.classification import ClassificationMetrics
from bmfleet.gates.detection import DetectionMetrics
from bmfleet.gates.errors import GateInputError
from bmfleet.gates.result import Gate, GateCheck, GateResult, Rule, Unit
from bmfleet.gates.similarity import OutputSimilarity

SLACK = 1e-9  # 64.4 - 62.4 is 2.000000000000007 in floats; a 2.0 pp limit must still pass it
UNDEFINED = "undefined (pycocotools had no ground truth to average over)"


class ClassificationThresholds(BaseModel):
    """Per k: the largest allowed top-k drop, where to warn, and an optional absolute INT8 minimum (%)."""

    model_config = ConfigDict(frozen=True)
    max_drop: dict[int, float] = Field(default_factory=lambda: {1: 2.0}, description="k -> pp.")
    warn_drop: dict[int, float] = Field(default_factory=lambda: {1: 1.5}, description="k -> pp.")
    min_accuracy: dict[int, float] = Field(default_factory=dict, description="k -> percent.")


class DetectionThresholds(BaseModel):
    """Largest allowed mAP drops (pp), warn levels, and optional absolute INT8 minimums (percent)."""

    model_config = ConfigDict(frozen=True)
    max_map_drop: float | None = 4.0
    max_map50_drop: float | None = 4.0
    warn_map_drop: float | None = 3.5
    warn_map50_drop: float | None = None
    min_map: float | None = None
    min_map50: float | None = None


class SimilarityThresholds(BaseModel):
    """Per output, on the worst sample: cosine and TPU-MLIR euclidean similarity must exceed their minimums
    (strictly, as npz_compare); the raw distance |int8 - fp32| may be bounded too."""

    model_config = ConfigDict(frozen=True)
    min_cosine: float | None = 0.85
    min_euclidean_similarity: float | None = 0.45
    max_euclidean_distance: float | None = None


def _pp(v: float) -> str:
    return f"{v:.2f} pp"


def drop_check(
    gate: Gate, metric: str, value: float | None, baseline: float | None, max_drop: float, warn: float | None = None
) -> GateCheck:
    """value (INT8, %) may fall at most `max_drop` pp below baseline (FP32, %)."""
    delta = None if value is None or baseline is None else value - baseline
    warning = False
    if delta is None:
        passed, detail = False, UNDEFINED
    else:
        passed = -delta <= max_drop + SLACK
        words = f"drop {_pp(-delta)}" if delta < 0 else f"gain {_pp(delta)}"
        detail = f"{words} {'<=' if passed else '>'} {_pp(max_drop)}"
        if passed and warn is not None and -delta > warn + SLACK:
            warning, detail = True, f"{detail} (warn above {_pp(warn)})"
    return GateCheck(
        gate=gate,
        metric=metric,
        rule="max_drop",
        unit="%",
        value=value,
        baseline=baseline,
        delta_pp=delta,
        threshold=max_drop,
        passed=passed,
        warning=warning,
        detail=detail,
    )


def limit_check(
    gate: Gate, metric: str, value: float | None, threshold: float, rule: Rule, unit: Unit, strict: bool = False
) -> GateCheck:
    """value must be >= threshold (`min`; > if strict) or <= threshold (`max`)."""
    if value is None:
        passed, detail = False, UNDEFINED
    elif rule == "min":
        passed = value > threshold if strict else value >= threshold
        detail = f"{value:.6g}{unit} {'>' if passed else '<=' if strict else '<'} {threshold:.6g}{unit}"
    else:
        passed = value <= threshold
        detail = f"{value:.6g}{unit} {'<=' if passed else '>'} {threshold:.6g}{unit}"
    return GateCheck(
        gate=gate,
        metric=metric,
        rule=rule,
        unit=unit,
        value=value,
        baseline=None,
        delta_pp=None,
        threshold=threshold,
        passed=passed,
        detail=detail,
    )


def check_classification(
    int8: ClassificationMetrics, fp32: ClassificationMetrics, th: ClassificationThresholds | None = None
) -> GateResult:
    """Top-k drops and minimums. A threshold for a k that was not computed is a GateInputError."""
    th = th or ClassificationThresholds()
    checks = []
    for k in sorted(set(th.max_drop) | set(th.min_accuracy)):
        if k not in int8.accuracy or k not in fp32.accuracy:
            raise GateInputError(f"classification thresholds name top-{k}, which was not computed")
        name = f"top-{k} accuracy"
        if k in th.max_drop:
            checks.append(
                drop_check(
                    "classification", name, int8.accuracy[k], fp32.accuracy[k], th.max_drop[k], th.warn_drop.get(k)
                )
            )
        if k in th.min_accuracy:
            checks.append(limit_check("classification", name, int8.accuracy[k], th.min_accuracy[k], "min", "%"))
    return GateResult.of(checks)


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


def check_detection(
    int8: DetectionMetrics, fp32: DetectionMetrics, th: DetectionThresholds | None = None
) -> GateResult:
    """mAP@[.50:.95] and mAP@.50 drops (pp) and minimums (%)."""
    th = th or DetectionThresholds()
    checks = []
    for name, q, r, max_drop, warn, minimum in (
        ("mAP@[.50:.95]", int8.ap, fp32.ap, th.max_map_drop, th.warn_map_drop, th.min_map),
        ("mAP@.50", int8.ap50, fp32.ap50, th.max_map50_drop, th.warn_map50_drop, th.min_map50),
    ):
        if max_drop is not None:
            checks.append(drop_check("detection", name, _pct(q), _pct(r), max_drop, warn))
        if minimum is not None:
            checks.append(limit_check("detection", name, _pct(q), minimum, "min", "%"))
    return GateResult.of(checks)


def check_similarity(outputs: list[OutputSimilarity], th: SimilarityThresholds | None = None) -> GateResult:
    """Per output, the worst sample against each configured bound."""
    th = th or SimilarityThresholds()
    checks = []
    for o in outputs:
        if th.min_cosine is not None:
            checks.append(limit_check("similarity", f"cosine ({o.name})", o.min_cosine, th.min_cosine, "min", "", True))
        if th.min_euclidean_similarity is not None:
            metric = f"euclidean similarity ({o.name})"
            checks.append(
                limit_check(
                    "similarity", metric, o.min_euclidean_similarity, th.min_euclidean_similarity, "min", "", True
                )
            )
        if th.max_euclidean_distance is not None:
            metric = f"euclidean distance ({o.name})"
            checks.append(
                limit_check("similarity", metric, o.max_euclidean_distance, th.max_euclidean_distance, "max", "")
            )
    return GateResult.of(checks)
