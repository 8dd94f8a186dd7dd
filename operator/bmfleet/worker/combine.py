"""`bmfleet worker combine`: what the combine Job runs. Merge the stored per-shape bmodels into one (pure
Python, `bmfleet.bmodel`), put it into the store, and leave the result record for the operator."""

from __future__ import annotations

import argparse
from pathlib import Path

from bmfleet.bmodel import read_model
from bmfleet.bmodel.combine import combine
from bmfleet.bmodel.errors import BModelError
from bmfleet.pipeline.pods import EXIT_BAD_INPUT
from bmfleet.store import StoreError
from bmfleet.worker.compile import EXIT_FAILED, write_result
from bmfleet.worker.storage import add_store_arguments, open_step_store


def main(argv: list[str]) -> int:
    """Entry point of the combine Job's container."""
    p = argparse.ArgumentParser(prog="bmfleet worker combine", description="Combine per-shape bmodels.")
    p.add_argument("--inputs", required=True, help="comma-separated blob URIs in the store, in stage order")
    add_store_arguments(p)
    p.add_argument("--name", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--result")
    args = p.parse_args(argv)
    outdir = Path(args.outdir)
    try:
        store = open_step_store(args.store, args.store_credentials)
        paths = [store.local(uri, outdir / "stages" / f"{i}.bmodel") for i, uri in enumerate(args.inputs.split(","))]
        out = outdir / args.name
        out.parent.mkdir(parents=True, exist_ok=True)
        combine(paths, out)
        model = read_model(out)
        blob, uri = store.put(out)
    except StoreError as exc:  # the store is unreachable or refuses: the Job retries
        write_result(args.result, {"state": "Failed", "reason": "StoreFailed", "message": str(exc)[-3000:]})
        return EXIT_FAILED
    except (BModelError, ValueError, OSError) as exc:
        write_result(args.result, {"state": "Failed", "reason": "CombineFailed", "message": str(exc)[-3000:]})
        return EXIT_BAD_INPUT
    stages = [len(net.stages) for net in model.nets]
    write_result(
        args.result,
        {
            "state": "Succeeded",
            "digest": f"sha256:{blob.digest}",
            "size": blob.size,
            "uri": uri,
            "nets": len(model.nets),
            "stages": sum(stages),
        },
    )
    return 0
