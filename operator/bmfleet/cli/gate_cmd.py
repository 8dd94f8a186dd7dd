"""``bmfleet gate eval-detection|eval-classification``: the gate metrics on files, without a cluster.

Each subcommand sets ``func`` (``Callable[[argparse.Namespace], int]``, the exit code) via set_defaults.
Exit codes: 0 success, 2 unusable input (the message on stderr names the file and the item; no traceback).
The accepted file formats are in FORMATS (shown by `bmfleet gate --help`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmfleet.gates.errors import GateInputError

if TYPE_CHECKING:
    import numpy.typing as npt

FORMATS = """\
Precision gate metrics on files. Exit 0 on success, 2 on unusable input.

accepted formats:
  --gt      COCO annotations JSON (images, annotations with bbox/area/iscrowd, categories)
  --dets    COCO results JSON: a list of {image_id, category_id, bbox: [x, y, w, h], score}
  --labels  .npy: 1-D integer array; .json: a list of integers; anything else: text, one sample per line,
            the label is the line's last whitespace-separated field ("65" or "ILSVRC2012_val_00000001.JPEG 65")
  --scores  .npy: (N, C) array; .npz: an archive holding exactly one (N, C) array; .json: a list of N lists
"""


def _fail(message: str) -> int:
    print(f"bmfleet gate: error: {message}", file=sys.stderr)
    return 2


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GateInputError(f"{what} {path}: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GateInputError(f"{what} {path}: not valid JSON ({e})") from e


def _load_array(path: Path, what: str) -> npt.NDArray[Any]:
    import numpy as np  # lazy, like every import here: `bmfleet <other command>` stays fast

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise GateInputError(f"{what} {path}: expected one array in the .npz, found {z.files}")
                return np.asarray(z[z.files[0]])
        return np.asarray(np.load(path, allow_pickle=False))
    except OSError as e:
        raise GateInputError(f"{what} {path}: {e.strerror or e}") from e
    except ValueError as e:  # not an npy/npz file, or pickled objects
        raise GateInputError(f"{what} {path}: not a numeric .npy/.npz array ({e})") from e


def load_labels(path: Path) -> npt.NDArray[Any]:
    """Integer labels from .npy, .json or text (see the module docstring)."""
    import numpy as np

    if path.suffix in (".npy", ".npz"):
        return _load_array(path, "labels")
    if path.suffix == ".json":
        doc = _read_json(path, "labels")
        if not isinstance(doc, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in doc):
            raise GateInputError(f"labels {path}: expected a JSON list of integers")
        return np.asarray(doc, dtype=np.int64)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise GateInputError(f"labels {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise GateInputError(f"labels {path}: not a text file ({e})") from e
    labels = []
    for n, line in enumerate(lines, 1):
        if fields := line.split():
            try:
                labels.append(int(fields[-1]))
            except ValueError:
                raise GateInputError(f"labels {path}:{n}: {fields[-1]!r} is not an integer label") from None
    return np.asarray(labels, dtype=np.int64)


def load_scores(path: Path) -> npt.NDArray[Any]:
    """(N, C) scores from .npy, .npz or .json (see the module docstring)."""
    import numpy as np

    if path.suffix == ".json":
        try:
            return np.asarray(_read_json(path, "scores"), dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise GateInputError(f"scores {path}: expected a JSON list of equal-length number lists ({e})") from e
    return _load_array(path, "scores")


def _topk(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,5, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"k must be >= 1, got {text!r}")
    return ks


def cmd_eval_detection(args: argparse.Namespace) -> int:
    from bmfleet.gates.detection import evaluate, format_table  # lazy: pycocotools only for this command

    try:
        metrics = evaluate(_read_json(args.gt, "ground truth"), _read_json(args.dets, "detections"))
    except GateInputError as e:
        return _fail(str(e))
    sys.stdout.write(metrics.model_dump_json(indent=2) + "\n" if args.json else format_table(metrics))
    return 0


def cmd_eval_classification(args: argparse.Namespace) -> int:
    from bmfleet.gates.classification import evaluate

    try:
        metrics = evaluate(load_labels(args.labels), load_scores(args.scores), args.topk)
    except GateInputError as e:
        return _fail(str(e))
    if args.json:
        sys.stdout.write(metrics.model_dump_json(indent=2) + "\n")
        return 0
    for k, acc in metrics.accuracy.items():
        print(f"top-{k:<3} {acc:7.3f} %  ({metrics.correct[k]}/{metrics.num_samples})")
    print(f"{metrics.num_samples} samples, {metrics.num_classes} classes")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Compile, combine (cached) and gate, exit 0 only when every gate check passed."""
    if not args.local:
        print("bmfleet gate run: only --local is supported; on a cluster the operator runs the gates", file=sys.stderr)
        return 2
    import yaml

    from bmfleet.cli.local import run_local

    doc = yaml.safe_load(args.file.read_text())
    if not isinstance(doc, dict) or not (doc.get("spec") or {}).get("gates"):
        print(f"bmfleet gate run: {args.file} has no spec.gates", file=sys.stderr)
        return 2
    return run_local(args.file, args.store, args.parallel)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bmfleet gate` and its subcommands on the top-level subparsers."""
    gate = sub.add_parser(
        "gate",
        help="precision gate metrics (COCO mAP, top-k) on files",
        description=FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = gate.add_subparsers(dest="gate_command", required=True)

    s = gsub.add_parser("run", help="build a BModelBuild manifest locally and run its gates (what the gate Job does)")
    s.add_argument("--file", "-f", type=Path, required=True, help="BModelBuild manifest with spec.gates")
    s.add_argument("--local", action="store_true", help="run as local processes (the only mode outside a cluster)")
    s.add_argument("--store", type=Path, default=Path("bmfleet-store"), help="local store (blobs, caches)")
    s.add_argument("--parallel", type=int, default=2, help="stages compiled at once")
    s.set_defaults(func=cmd_run)

    s = gsub.add_parser("eval-detection", help="COCO bbox mAP (pycocotools) of detections against ground truth")
    s.add_argument("--gt", type=Path, required=True, help="COCO annotations JSON")
    s.add_argument("--dets", type=Path, required=True, help="COCO results JSON (list of detections)")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(func=cmd_eval_detection)

    s = gsub.add_parser("eval-classification", help="top-k accuracy of scores against labels")
    s.add_argument("--labels", type=Path, required=True, help="labels: .npy, .json list, or text (last field)")
    s.add_argument("--scores", type=Path, required=True, help="scores (N, C): .npy, .npz or .json")
    s.add_argument("--topk", type=_topk, default=[1, 5], help="comma-separated k values (default 1,5)")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(func=cmd_eval_classification)
