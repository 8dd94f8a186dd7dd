"""Gate wall time per 1,000 images on the simulator, and where the time goes (issue 4 target: our code < 10%).

A classifier trained here (synthetic images, cached) is compiled INT8 for BM1684 at batch 4 and batch 1 by
`bmfleet build --local` (compile cache in $BMFLEET_CACHE, so reruns only gate), then the classification gate runs
over 1,000 labelled images (the test split, repeated) exactly as the gate Job runs it. Shares: the device runtime
(TPU-MLIR's simulator: loading and forward passes), the FP32 reference (onnxruntime), and ours (image decoding and
preprocessing, batching, decoding outputs, metrics, report).

    .venv/bin/python bench/gates.py [--images 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import yaml

from bmfleet.api.build import Gates
from bmfleet.cli.local import run_local
from bmfleet.sandbox.trained import cached_models_dir, train_classifier
from bmfleet.store.fs import FileStore
from bmfleet.toolchains.tpu_mlir import find_bin_dir
from bmfleet.worker.gate_run import GateRun


def _dataset(src: Path, dest: Path, images: int) -> Path:
    """`images` labelled images: the test split's lines repeated (the files are shared)."""
    lines = [ln for ln in (src / "labels.txt").read_text().splitlines() if ln.strip()]
    dest.mkdir(parents=True)
    (dest / "images").symlink_to(src / "images")
    (dest / "labels.txt").write_text("\n".join(lines[i % len(lines)] for i in range(images)) + "\n")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    bin_dir = find_bin_dir()
    model = train_classifier(cached_models_dir() / "classifier", bin_dir / "python")
    cache = Path(os.environ.get("BMFLEET_CACHE", ".cache")).resolve() / "bench-gates-store"
    work = Path(tempfile.mkdtemp(prefix="bmfleet-bench-gates-"))
    manifest = work / "build.yaml"
    spec = {
        "toolchain": {"name": "tpu-mlir"},
        "model": {"format": "onnx", "uri": f"file://{model.onnx}"},
        "chip": "BM1684",
        "precision": "INT8",
        "netName": "cls",
        "shapes": [{"shape": "[4,3,32,32]"}, {"shape": "[1,3,32,32]"}],
        "calibration": {"datasetUri": f"file://{model.calibration_dir}", "samples": 32},
    }
    manifest.write_text(yaml.safe_dump({"apiVersion": "bmfleet.io/v1alpha1", "kind": "BModelBuild",
                                        "metadata": {"name": "cls"}, "spec": spec}))  # fmt: skip
    out = io.StringIO()
    if run_local(manifest, cache, 2, out) != 0:
        raise SystemExit(f"build failed:\n{out.getvalue()}")
    combined = cache / "work" / "cls" / "combined" / "cls.bmodel"
    data = _dataset(model.test_dir, work / "data", args.images)
    gates = Gates.model_validate({"classification": {"datasetUri": f"file://{data}", "topk": [1, 5],
                                                    "preprocess": {"mean": model.preprocess["mean"],
                                                                   "scale": model.preprocess["scale"]}}})  # fmt: skip
    store = FileStore(work / "store")
    t0 = time.perf_counter()
    run = GateRun(gates, combined, model.onnx, None, work / "gate", store, inputs=lambda u: Path(u[7:]))
    verdict, report = run.run()
    wall = time.perf_counter() - t0
    t = run.timings
    per_k = 1000 / args.images
    ours = wall - t["runtime"] - t["fp32"]
    print(f"{'measure':<58}{'value':>10}{'target':>10}")
    print(f"{'images gated':<58}{args.images:>10}")
    print(f"{'gate wall time per 1,000 images (s)':<58}{wall * per_k:>10.1f}")
    print(f"{'  device runtime: simulator load + forward (s)':<58}{t['runtime'] * per_k:>10.1f}")
    print(f"{'  FP32 reference: onnxruntime (s)':<58}{t['fp32'] * per_k:>10.1f}")
    print(f"{'  ours: decode/preprocess, batching, metrics, report (s)':<58}{ours * per_k:>10.1f}")
    print(f"{'    of which image decode + preprocess (s)':<58}{t['images'] * per_k:>10.1f}")
    print(f"{'  our share of the wall time':<58}{ours / wall:>10.1%}{'< 10%':>10}")
    print(f"{'  our share vs the device runtime':<58}{ours / t['runtime']:>10.1%}")
    print(f"verdict: {verdict.summary()}; report {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
