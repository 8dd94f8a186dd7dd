"""``bmfleet bmodel info|verify|combine``: inspect and combine bmodel files without the vendor SDK.

Each subcommand sets ``func`` (``Callable[[argparse.Namespace], int]``, the exit code) via set_defaults.
Exit codes: 0 success, 1 a bad or uncombinable bmodel (the message on stderr says what and where).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bmfleet.bmodel import BModelError


def _fail(e: BModelError) -> int:
    print(f"bmfleet bmodel: error: {e}", file=sys.stderr)
    return 1


def cmd_info(args: argparse.Namespace) -> int:
    from bmfleet.bmodel import (  # lazy: keeps `bmfleet <other command>` fast
        BModelError,
        format_text,
        read_model,
        to_json,
    )

    try:
        model = read_model(args.file)
    except BModelError as e:
        return _fail(e)
    if args.json:
        json.dump(to_json(model), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(model))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bmfleet.bmodel import (  # lazy: keeps `bmfleet <other command>` fast
        BModelError,
        read_model,
    )

    try:
        model = read_model(args.file)
    except BModelError as e:
        return _fail(e)
    stages = sum(len(n.stages) for n in model.nets)
    print(f"{args.file}: OK ({model.chip}, {len(model.nets)} net(s), {stages} stage(s))")
    for u in model.unknown_fields:
        print(f"warning: field not in the schema: {u}", file=sys.stderr)
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    from bmfleet.bmodel import (  # lazy: keeps `bmfleet <other command>` fast
        BModelError,
        combine,
    )

    t0 = time.perf_counter()
    try:
        report = combine(args.inputs, args.output)
    except BModelError as e:
        return _fail(e)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    nets = ", ".join(f"{name} ({n} stage{'s' if n != 1 else ''})" for name, n in report.nets)
    print(
        f"{report.output}: {nets}; {report.blobs} blobs ({report.blobs_shared} shared), "
        f"{report.file_size} bytes in {time.perf_counter() - t0:.3f}s"
    )
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``bmodel`` command and its subcommands."""
    parser = subparsers.add_parser("bmodel", help="inspect, verify and combine SOPHGO .bmodel files")
    sub = parser.add_subparsers(dest="bmodel_command", metavar="COMMAND", required=True)

    s = sub.add_parser("info", help="chip, version, nets, stages, tensors and memory (like model_tool --info)")
    s.add_argument("file", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("verify", help="check the header, the flatbuffer and every binary reference")
    s.add_argument("file", type=Path)
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("combine", help="combine bmodels (same net name: stages of one net; else separate nets)")
    s.add_argument("inputs", nargs="+", type=Path, metavar="FILE")
    s.add_argument("-o", "--output", type=Path, required=True, help="the combined bmodel to write")
    s.set_defaults(func=cmd_combine)
