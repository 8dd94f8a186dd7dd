"""`bmfleet worker combine`: what the combine Job runs. Merge the stored per-shape bmodels into one (pure
Python, `bmfleet.bmodel`), put it into the store, and leave the result record for the operator."""

from __future__ import annotations

import argparse
from pathlib import Path

from bmfleet.bmodel import read_model
from bmfleet.bmodel.combine import combine
from bmfleet.bmodel.errors import BModelError
from bmfleet.pipeline.pods import EXIT_BAD_INPUT
from bmfleet.store.fs import FileStore
from bmfleet.worker.compile import store_location, write_result


def main(argv: list[str]) -> int:
    """Entry point of the combine Job's container."""
    p = argparse.ArgumentParser(prog="bmfleet worker combine", description="Combine per-shape bmodels.")
    p.add_argument("--inputs", required=True, help="comma-separated store URIs, in stage order")
    p.add_argument("--store", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--result")
    args = p.parse_args(argv)
    try:
        root, base = store_location(args.store)
        store = FileStore(root)
        paths = [store.path(uri.removeprefix(f"{base}/")) for uri in args.inputs.split(",")]
        out = Path(args.outdir) / args.name
        out.parent.mkdir(parents=True, exist_ok=True)
        combine(paths, out)
        model = read_model(out)
        blob = store.put(out)
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
            "uri": f"{base}/{blob.key}",
            "nets": len(model.nets),
            "stages": sum(stages),
        },
    )
    return 0
