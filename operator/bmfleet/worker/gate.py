"""`bmfleet worker gate`: what a gate Job runs. Every stage of the combined bmodel runs on the device runtime
(here TPU-MLIR's simulator) and the FP32 source model on onnxruntime, on the same preprocessed inputs; the
metrics are held against the thresholds; report.html and result.json go into the store beside the artifact."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bmfleet.api.build import Gates
from bmfleet.gates.errors import GateInputError
from bmfleet.store import StoreError
from bmfleet.store.fs import FileStore
from bmfleet.toolchains.common import CompileFailure
from bmfleet.worker.compile import EXIT_BAD_INPUT, EXIT_FAILED, write_result
from bmfleet.worker.gate_run import GateRun
from bmfleet.worker.inputs import InputError, resolve
from bmfleet.worker.storage import StepStore, add_store_arguments, open_step_store


def parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so tests can check it against the Job builder)."""
    p = argparse.ArgumentParser(prog="bmfleet worker gate", description="Gate a combined bmodel against FP32.")
    p.add_argument("--bmodel", required=True, help="store URI of the combined bmodel")
    p.add_argument("--model", required=True, help="the FP32 source model (ONNX)")
    p.add_argument("--model-sha256")
    p.add_argument("--calibration", help="calibration samples (similarity gate)")
    p.add_argument("--gates", required=True, help="spec.gates as JSON")
    add_store_arguments(p)
    p.add_argument("--outdir", required=True)
    p.add_argument("--result")
    return p


def _fp32_cache(store: StepStore, workdir: Path) -> Path:
    """Where FP32 outputs are cached: in a mounted store (shared by every gate run), else in this run only."""
    if isinstance(store.store, FileStore):
        return store.store.root / "cache" / "fp32"
    return workdir / "fp32-cache"


def _compact(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks for the result record and status (the termination message holds 4 KiB)."""
    keys = ("gate", "metric", "value", "baseline", "deltaPp", "threshold", "rule", "passed")
    out = []
    for c in checks:
        row = {"deltaPp" if k == "delta_pp" else k: v for k, v in c.items() if k in (*keys, "delta_pp")}
        out.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if v is not None})
    return out


def main(argv: list[str]) -> int:
    """Run the gates; exit 0 with the verdict in the record (passed or not), 2 on bad input."""
    args = parser().parse_args(argv)
    t0 = time.monotonic()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        store = open_step_store(args.store, args.store_credentials)
        bmodel = store.local(args.bmodel, outdir / "stored" / "combined.bmodel")
    except (StoreError, ValueError, OSError) as exc:  # the store is unreachable or refuses: the Job retries
        write_result(args.result, {"state": "Failed", "reason": "StoreFailed", "message": str(exc)[:3000]})
        return EXIT_FAILED
    try:
        gates = Gates.model_validate(json.loads(args.gates))
        model = resolve(args.model, outdir, args.model_sha256)
        calibration = resolve(args.calibration, outdir) if args.calibration else None
        fp32_cache = _fp32_cache(store, outdir)
        run = GateRun(gates, bmodel, model, calibration, outdir, fp32_cache, inputs=lambda u: resolve(u, outdir))
        result, report = run.run()
    except (InputError, GateInputError, ValueError) as exc:
        write_result(args.result, {"state": "Failed", "reason": "BadGateInput", "message": str(exc)[:3000]})
        return EXIT_BAD_INPUT
    except CompileFailure as exc:
        message = f"{exc.message}\n{exc.log_tail}".strip()[-3000:]
        write_result(args.result, {"state": "Failed", "reason": "GateRunFailed", "message": message})
        return EXIT_FAILED
    try:
        (_, report_uri), (_, result_uri) = store.put(report), store.put(report.with_name("result.json"))
    except (StoreError, OSError) as exc:
        write_result(args.result, {"state": "Failed", "reason": "StoreFailed", "message": str(exc)[:3000]})
        return EXIT_FAILED
    record: dict[str, Any] = {
        "state": "Succeeded",
        "passed": result.passed,
        "summary": result.summary()[:1000],
        "checks": _compact([c.model_dump() for c in result.checks]),
        "reportUri": report_uri,
        "resultUri": result_uri,
        "seconds": round(time.monotonic() - t0, 1),
        "timings": {k: round(v, 2) for k, v in run.timings.items()},
    }
    write_result(args.result, record)
    return 0
