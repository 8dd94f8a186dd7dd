"""`bmfleet` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bmfleet import __version__


def _crds(args: argparse.Namespace) -> int:
    from bmfleet.api.crds import all_crds_yaml

    sys.stdout.write(all_crds_yaml())
    return 0


def _generate(args: argparse.Namespace) -> int:
    from bmfleet.cli.generate import write_generated

    for path in write_generated(args.root, check=args.check):
        print(path)
    return 0


def _operator(args: argparse.Namespace) -> int:
    from bmfleet.controllers.run import run

    return run(args.namespace, args.liveness, args.verbose, args.metrics_bind)


def _worker(args: argparse.Namespace) -> int:
    import importlib

    step: Callable[[list[str]], int] = importlib.import_module(f"bmfleet.worker.{args.step}").main
    return step(args.rest)


def _build(args: argparse.Namespace) -> int:
    if not args.local:
        print("bmfleet build: only --local is supported; on a cluster, kubectl apply -f the manifest", file=sys.stderr)
        return 2
    from pathlib import Path

    from bmfleet.cli.local import run_local

    return run_local(Path(args.file), Path(args.store), args.parallel)


def _demo(args: argparse.Namespace) -> int:
    from bmfleet.cli.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; each imports its code lazily so `bmfleet crds` does not load kopf."""
    p = argparse.ArgumentParser(prog="bmfleet", description="Compile, gate and roll out SOPHGO bmodels.")
    p.add_argument("--version", action="version", version=f"bmfleet {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("crds", help="print the CustomResourceDefinitions generated from the API models")
    s.set_defaults(func=_crds)

    s = sub.add_parser("generate", help="write crds/ and the chart's generated files (--check: fail on drift)")
    s.add_argument("--root", default=".", help="repository root")
    s.add_argument("--check", action="store_true", help="do not write; exit 1 if a file is out of date")
    s.set_defaults(func=_generate)

    s = sub.add_parser("operator", help="run the operator against the current kubeconfig")
    s.add_argument("--namespace", "-n", action="append", default=[], help="watch only these (repeatable)")
    s.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces (default)")
    s.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    s.add_argument("--metrics-bind", default=None, help="serve Prometheus /metrics on host:port, e.g. 0.0.0.0:8081")
    s.add_argument("--verbose", "-v", action="store_true")
    s.set_defaults(func=_operator)

    from bmfleet.cli.gate_cmd import add_parser as add_gate_parser
    from bmfleet.cli.gateway_cmd import add_parser as add_gateway_parser
    from bmfleet.cli.status_cmd import add_parser as add_status_parser

    add_gate_parser(sub)
    add_gateway_parser(sub)
    add_status_parser(sub)

    s = sub.add_parser("worker", help="entry points run inside Jobs")
    s.add_argument("step", choices=["resolve", "compile", "combine", "gate", "publish"])
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=_worker)

    s = sub.add_parser("build", help="run a BModelBuild's steps without a cluster (--local)")
    s.add_argument("-f", "--file", required=True, help="BModelBuild manifest")
    s.add_argument("--local", action="store_true", help="run the steps as local processes")
    s.add_argument("--store", default="bmfleet-store", help="local store directory (blobs and compile cache)")
    s.add_argument("--parallel", "-j", type=int, default=2, help="stages compiled at once")
    s.set_defaults(func=_build)

    s = sub.add_parser("demo", help="sandbox + operator + a real two-shape TPU-MLIR build, followed to the end")
    s.add_argument("--state-dir", default=None, help="sandbox state directory (default .sandbox)")
    s.add_argument("--timeout", type=float, default=600, help="seconds to wait for the build")
    s.set_defaults(func=_demo)

    from bmfleet.cli.bmodel_cmd import add_commands as add_bmodel_commands
    from bmfleet.sandbox.cli import add_commands

    add_commands(sub)
    add_bmodel_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
