"""`bmfleet gate eval-detection|eval-classification`: outputs, every accepted file format, and exit 2 with a
one-line message (never a traceback) on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bmfleet.gates.detection import STATS
from tests.unit.gates.conftest import COCO_DIR


def test_detection_table_lists_the_12_stats_and_every_class(cli: Any) -> None:
    code, out, err = cli(
        "eval-detection",
        "--gt",
        str(COCO_DIR / "many_classes.gt.json"),
        "--dets",
        str(COCO_DIR / "many_classes.dets.json"),
    )
    assert code == 0 and err == ""
    for _, label in STATS:
        assert label in out
    gt = json.loads((COCO_DIR / "many_classes.gt.json").read_text())
    for c in gt["categories"]:
        assert f"class-{c['id']}" in out
    assert "n/a" in out  # classes without ground truth
    assert "40 images, " in out


def write(tmp_path: Path, name: str, doc: Any) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("gt", "dets", "message"),
    [
        (None, "[]", "ground truth {d}/gt.json: No such file or directory"),
        ("{", "[]", "ground truth {d}/gt.json: not valid JSON"),
        ({"images": [], "categories": []}, "[]", "ground truth: missing key 'annotations'"),
        (
            {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]},
            [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 1}],
            "detection #0: category_id 2 is not a category of the ground truth",
        ),
    ],
)
def test_detection_bad_input_exits_2(tmp_path: Path, cli: Any, gt: Any, dets: Any, message: str) -> None:
    gt_path = write(tmp_path, "gt.json", gt) if gt is not None else str(tmp_path / "gt.json")
    code, out, err = cli("eval-detection", "--gt", gt_path, "--dets", write(tmp_path, "dets.json", dets))
    assert code == 2 and out == ""
    assert err.startswith(f"bmfleet gate: error: {message.format(d=tmp_path)}") and err.count("\n") == 1


SCORES = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
LABELS = [1, 1, 2, 2]  # ranks 0, 1, 2, 0: top-1 50 %, top-2 75 %


def label_files(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "labels.npy", np.array(LABELS))
    return [
        str(tmp_path / "labels.npy"),
        write(tmp_path, "labels.json", LABELS),
        write(tmp_path, "labels.txt", "1\n1\n\n2\n2\n"),
        write(tmp_path, "val.txt", "a.JPEG 1\nb.JPEG 1\nc.JPEG 2\nd.JPEG 2\n"),
    ]


def score_files(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "scores.npy", SCORES.astype(np.float32))
    np.savez(tmp_path / "scores.npz", logits=SCORES)
    return [str(tmp_path / "scores.npy"), str(tmp_path / "scores.npz"), write(tmp_path, "scores.json", SCORES.tolist())]


def test_classification_every_format(tmp_path: Path, cli: Any) -> None:
    for labels in label_files(tmp_path):
        for scores in score_files(tmp_path):
            code, out, err = cli(
                "eval-classification", "--labels", labels, "--scores", scores, "--topk", "1,2", "--json"
            )
            assert code == 0, (labels, scores, err)
            assert json.loads(out)["accuracy"] == {"1": 50.0, "2": 75.0}, (labels, scores)


def test_classification_text_output(tmp_path: Path, cli: Any) -> None:
    labels, scores = label_files(tmp_path)[0], score_files(tmp_path)[0]
    code, out, _ = cli("eval-classification", "--labels", labels, "--scores", scores, "--topk", "2,1")
    assert code == 0
    assert out.splitlines() == ["top-1    50.000 %  (2/4)", "top-2    75.000 %  (3/4)", "4 samples, 3 classes"]


@pytest.mark.parametrize(
    ("labels", "scores", "extra", "message"),
    [
        ("0\n7\n", SCORES[:2].tolist(), [], "labels: sample 1 has label 7, outside the 3 classes [0, 2]"),
        ("0\nseven\n", SCORES[:2].tolist(), [], "labels {d}/labels.txt:2: 'seven' is not an integer label"),
        ("0\n", SCORES[:2].tolist(), [], "labels and scores disagree: 1 labels, 2 score rows"),
        ("0\n1\n", SCORES[:2].tolist(), ["--topk", "4"], "top-k: k=4 exceeds the number of classes (3)"),
        ("0\n1\n", [[1, 2], [3]], [], "scores {d}/scores.json: expected a JSON list of equal-length number lists"),
    ],
)
def test_classification_bad_input_exits_2(
    tmp_path: Path, cli: Any, labels: str, scores: Any, extra: list[str], message: str
) -> None:
    code, out, err = cli(
        "eval-classification",
        "--labels",
        write(tmp_path, "labels.txt", labels),
        "--scores",
        write(tmp_path, "scores.json", scores),
        *extra,
    )
    assert code == 2 and out == ""
    assert err.startswith(f"bmfleet gate: error: {message.format(d=tmp_path)}")
    assert "Traceback" not in err


def test_classification_unreadable_arrays_exit_2(tmp_path: Path, cli: Any) -> None:
    bad = write(tmp_path, "scores.npy", "not numpy")
    np.savez(tmp_path / "two.npz", a=SCORES, b=SCORES)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    labels = write(tmp_path, "labels.json", [0])
    for scores, message in (
        (bad, "not a numeric .npy/.npz array"),
        (str(tmp_path / "two.npz"), "expected one array in the .npz, found ['a', 'b']"),
        (str(tmp_path / "objects.npy"), "not a numeric .npy/.npz array"),
        (str(tmp_path / "absent.npy"), "No such file or directory"),
    ):
        code, _, err = cli("eval-classification", "--labels", labels, "--scores", scores)
        assert code == 2 and message in err, err
    code, _, err = cli("eval-classification", "--labels", write(tmp_path, "l.json", [True]), "--scores", bad)
    assert code == 2 and "expected a JSON list of integers" in err


@pytest.mark.parametrize("topk", ["one", "0", ","])
def test_bad_topk_is_a_usage_error(tmp_path: Path, cli: Any, topk: str) -> None:
    code, _, err = cli("eval-classification", "--labels", "l", "--scores", "s", "--topk", topk)
    assert code == 2 and "--topk" in err
