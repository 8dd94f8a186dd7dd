"""Shared helpers for the gate tests: the committed COCO fixtures and an independent pycocotools run."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bmfleet.cli.gate_cmd import add_parser

COCO_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "coco"
FIXTURES = sorted(p.name.removesuffix(".gt.json") for p in COCO_DIR.glob("*.gt.json"))


def load_fixture(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt = json.loads((COCO_DIR / f"{name}.gt.json").read_text())
    dets = json.loads((COCO_DIR / f"{name}.dets.json").read_text())
    return gt, dets


def pycocotools_eval(gt: dict[str, Any], dets: list[dict[str, Any]], cat_ids: list[int] | None = None) -> COCOeval:
    """pycocotools straight from its README recipe, on untouched copies of the inputs (optionally one
    category subset), for comparison with what bmfleet.gates computes."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def none_for_minus_one(values: Any) -> list[float | None]:
    return [None if v == -1 else float(v) for v in np.asarray(values)]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `bmfleet gate ...` in-process through the real argparse wiring: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="bmfleet")
        add_parser(parser.add_subparsers(dest="command", required=True))
        try:
            args = parser.parse_args(["gate", *argv])
            code = args.func(args)
        except SystemExit as e:  # argparse usage errors
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
