"""metav1.LabelSelector matching, as the API server does it, so selection needs no list call per rollout."""

from __future__ import annotations

from collections.abc import Mapping

from bmfleet.api.rollout import LabelSelector


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy every matchLabels pair and every matchExpressions requirement.
    An empty selector selects everything (metav1 semantics)."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True
