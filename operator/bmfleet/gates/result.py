"""The gate verdict: one row per (metric, threshold), JSON-serialisable for status, provenance and reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Gate = Literal["similarity", "classification", "detection"]
Rule = Literal["max_drop", "min", "max"]
Unit = Literal["%", ""]


class GateCheck(BaseModel):
    """One metric held against one threshold.

    `max_drop`: passes iff baseline - value <= threshold (percentage points; 1e-9 slack for float noise);
    `min`: value >= threshold, except similarity minimums, which are strict (value > threshold) as in
    TPU-MLIR's npz_compare; `max`: value <= threshold. An undefined value (None) never passes."""

    gate: Gate
    metric: str = Field(description="e.g. 'top-1 accuracy', 'mAP@[.50:.95]', 'cosine similarity (output0)'.")
    rule: Rule
    unit: Unit = Field(description="'%' for accuracies and mAP (deltas are percentage points).")
    value: float | None = Field(description="INT8 model.")
    baseline: float | None = Field(description="FP32 model; None where FP32 is the reference itself.")
    delta_pp: float | None = Field(description="value - baseline in percentage points; negative is a drop.")
    threshold: float
    passed: bool
    warning: bool = Field(False, description="Passed, but beyond the warn threshold.")
    detail: str = Field("", description="Why it passed or failed, in words.")


class GateResult(BaseModel):
    """All checks of a gate run; passes iff there is at least one check and every check passed (a gate that
    checked nothing must not let a model through)."""

    checks: list[GateCheck]
    passed: bool

    @classmethod
    def of(cls, checks: list[GateCheck]) -> GateResult:
        """The verdict over `checks`."""
        return cls(checks=checks, passed=bool(checks) and all(c.passed for c in checks))

    @property
    def failed(self) -> list[GateCheck]:
        """The checks that failed, for messages and conditions."""
        return [c for c in self.checks if not c.passed]

    @property
    def warnings(self) -> list[GateCheck]:
        """The checks that passed with a warning."""
        return [c for c in self.checks if c.warning]

    def summary(self) -> str:
        """One line for a status condition message."""
        if not self.checks:
            return "no gate checks ran"
        if self.passed:
            warn = f", {len(self.warnings)} with warnings" if self.warnings else ""
            return f"all {len(self.checks)} checks passed{warn}"
        return "; ".join(f"{c.metric}: {c.detail}" for c in self.failed)


def combine(*results: GateResult) -> GateResult:
    """One verdict over several gates (similarity + classification/detection run by one gate Job)."""
    return GateResult.of([c for r in results for c in r.checks])
