"""`bmfleet worker resolve`: what a resolve Job runs. Fetch each input the way a compile would and report
its content digest (a directory's is the digest of its sorted listing), as the pod's result record."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bmfleet.api.digests import sha256_tree
from bmfleet.worker.compile import EXIT_BAD_INPUT, write_result
from bmfleet.worker.inputs import InputError, resolve


def _pair(text: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or name not in ("model", "weights", "calibration"):
        raise argparse.ArgumentTypeError(f"expected model|weights|calibration=URI, got {text!r}")
    return name, uri


def main(argv: list[str]) -> int:
    """Digest every --input; exit 2 (bad input, no retry) when one cannot be had."""
    p = argparse.ArgumentParser(prog="bmfleet worker resolve", description="Report the digests of inputs.")
    p.add_argument("--input", type=_pair, action="append", default=[], required=True)
    p.add_argument("--result", help="where to write the JSON result record (the pod's termination message)")
    args = p.parse_args(argv)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="resolve-") as work:
        try:
            for name, uri in args.input:
                digests[name] = sha256_tree(resolve(uri, Path(work)))
        except InputError as exc:
            write_result(args.result, {"state": "Failed", "reason": "BadInput", "message": str(exc)})
            return EXIT_BAD_INPUT
    write_result(args.result, {"state": "Succeeded", "digests": digests})
    return 0
