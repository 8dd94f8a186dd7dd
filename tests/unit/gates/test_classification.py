"""Top-k accuracy: hand-checkable cases, the documented tie rule, and named input errors."""

from __future__ import annotations

import numpy as np
import pytest

from bmfleet.gates.classification import evaluate, label_ranks
from bmfleet.gates.errors import GateInputError


def test_hand_checked_top1_top2() -> None:
    scores = [
        [0.1, 0.7, 0.2],  # label 1: rank 0
        [0.5, 0.3, 0.2],  # label 1: rank 1
        [0.6, 0.3, 0.1],  # label 2: rank 2
        [0.2, 0.2, 0.6],  # label 2: rank 0
    ]
    m = evaluate([1, 1, 2, 2], scores, topk=[1, 2, 3])
    assert m.correct == {1: 2, 2: 3, 3: 4}
    assert m.accuracy == {1: 50.0, 2: 75.0, 3: 100.0}
    assert (m.num_samples, m.num_classes) == (4, 3)


def test_ties_rank_lower_class_index_first() -> None:
    """All four scores equal: class 0 is top-1, class 3 only top-4 (a stable descending sort)."""
    scores = np.full((4, 4), 0.25)
    assert label_ranks([0, 1, 2, 3], scores).tolist() == [0, 1, 2, 3]
    assert evaluate([0, 1, 2, 3], scores, topk=[1, 2, 4]).correct == {1: 1, 2: 2, 4: 4}
    # a tie with a higher-index class does not push the label down; with a lower-index class it does
    assert label_ranks([1], [[0.9, 0.5, 0.5]]).tolist() == [1]
    assert label_ranks([2], [[0.9, 0.5, 0.5]]).tolist() == [2]


def test_rule_equals_stable_argsort_on_quantised_scores() -> None:
    """INT8-like scores (few levels, many ties): the rank rule equals np.argsort(-s, kind='stable')."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=(500, 12)).astype(np.float32) / 5
    labels = rng.integers(0, 12, size=500)
    order = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")
    for k in (1, 3, 5, 12):
        expected = (order[:, :k] == labels[:, None]).any(axis=1).sum()
        assert evaluate(labels, scores, topk=[k]).correct[k] == expected


def test_infinite_scores_rank_and_float_labels_that_are_integers_pass() -> None:
    m = evaluate(np.array([0.0, 2.0]), [[-np.inf, 1, 0], [0, np.inf, 2]], topk=[1, 2])
    assert m.correct == {1: 0, 2: 1}


@pytest.mark.parametrize(
    ("labels", "scores", "topk", "message"),
    [
        ([0, 3], [[1, 2, 3], [1, 2, 3]], [1], r"sample 1 has label 3, outside the 3 classes \[0, 2\]"),
        ([-1, 0], [[1, 2, 3], [1, 2, 3]], [1], "sample 0 has label -1"),
        ([0, 5, 7], [[1, 2, 3]] * 3, [1], r"sample 1 has label 5.*\(2 such samples\)"),
        ([0], [[1, 2, 3], [1, 2, 3]], [1], "1 labels, 2 score rows"),
        ([0.5], [[1, 2, 3]], [1], "labels: must be integers"),
        ([[0]], [[1, 2, 3]], [1], "labels: must be one integer per sample"),
        ([0], [1, 2, 3], [1], "scores: must be a non-empty"),
        ([0], [[1, np.nan, 3]], [1], "sample 0 has a NaN score"),
        ([0], [[1, 2, 3]], [5], r"k=5 exceeds the number of classes \(3\)"),
        ([0], [[1, 2, 3]], [0], "k must be a positive integer"),
        (["a"], [[1, 2, 3]], [1], "labels: must be integers"),
    ],
)
def test_bad_input_is_named(labels: object, scores: object, topk: list[int], message: str) -> None:
    with pytest.raises(GateInputError, match=message):
        evaluate(labels, scores, topk)  # type: ignore[arg-type]
