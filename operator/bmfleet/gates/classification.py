"""Top-k accuracy with a tie rule fixed in writing, so INT8 and FP32 runs are judged the same way.

torchvision's and timm's `accuracy()` take `output.topk(k)` and count a hit when the label is among those k
indices; `torch.topk` leaves the order of equal scores unspecified. INT8 outputs tie often (few distinct
levels), so the rule here is explicit and equals a stable descending sort, `np.argsort(-scores,
kind="stable")[:, :k]`: the label is in the top k iff

    #(scores strictly greater than the label's) + #(scores equal to it at a lower class index) < k

i.e. among equal scores the lower class index ranks first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from bmfleet.gates.errors import GateInputError


class ClassificationMetrics(BaseModel):
    """Per-k accuracy in percent (0..100) over `num_samples` samples."""

    num_samples: int
    num_classes: int
    accuracy: dict[int, float] = Field(description="k -> top-k accuracy, percent.")
    correct: dict[int, int] = Field(description="k -> samples whose label is in the top k.")


def label_ranks(labels: npt.ArrayLike, scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The 0-based rank of each sample's label under the tie rule above (0 = top-1 hit)."""
    y, s = _validate(labels, scores)
    own = s[np.arange(len(y)), y][:, None]
    cls = np.arange(s.shape[1])[None, :]
    ahead = (s > own) | ((s == own) & (cls < y[:, None]))
    return np.asarray(ahead.sum(axis=1), dtype=np.int64)


def evaluate(labels: npt.ArrayLike, scores: npt.ArrayLike, topk: Sequence[int] = (1, 5)) -> ClassificationMetrics:
    """Top-k accuracies of `scores` (N, C) against integer `labels` (N,). Raises GateInputError."""
    ks = sorted(set(topk))
    y, s = _validate(labels, scores)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise GateInputError(f"top-k: k must be a positive integer, got {k!r}")
        if k > s.shape[1]:
            raise GateInputError(f"top-k: k={k} exceeds the number of classes ({s.shape[1]})")
    ranks = label_ranks(y, s)
    correct = {int(k): int((ranks < k).sum()) for k in ks}
    return ClassificationMetrics(
        num_samples=len(y),
        num_classes=s.shape[1],
        accuracy={k: 100.0 * c / len(y) for k, c in correct.items()},
        correct=correct,
    )


def _validate(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    try:
        y_raw = np.asarray(labels)
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise GateInputError(f"labels/scores: not numeric arrays ({e})") from e
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise GateInputError(f"scores: must be a non-empty (samples, classes) array, got shape {s.shape}")
    if y_raw.ndim != 1:
        raise GateInputError(f"labels: must be one integer per sample, got shape {y_raw.shape}")
    whole = y_raw.dtype.kind == "f" and np.all(np.isfinite(y_raw)) and np.all(y_raw == np.round(y_raw))
    if y_raw.dtype.kind not in "iu" and not whole:
        raise GateInputError(f"labels: must be integers, got dtype {y_raw.dtype}")
    if len(y_raw) != s.shape[0]:
        raise GateInputError(f"labels and scores disagree: {len(y_raw)} labels, {s.shape[0]} score rows")
    bad = np.flatnonzero((y_raw < 0) | (y_raw >= s.shape[1]))
    if bad.size:
        i = int(bad[0])
        raise GateInputError(
            f"labels: sample {i} has label {y_raw[i]}, outside the {s.shape[1]} classes [0, {s.shape[1] - 1}]"
            + (f" ({bad.size} such samples)" if bad.size > 1 else "")
        )
    nan = np.flatnonzero(np.isnan(s).any(axis=1))  # +-inf ranks fine (masked logits); NaN has no order
    if nan.size:
        raise GateInputError(f"scores: sample {int(nan[0])} has a NaN score")
    return y_raw.astype(np.int64), s
