"""``bmfleet sandbox up|down|status|kubeconfig``: a local control plane for demos and manual testing.

Each subcommand sets ``func`` (``Callable[[argparse.Namespace], int]``, the exit code) via set_defaults;
the main CLI dispatches to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bmfleet.sandbox.procs import ComponentError

STATE_DIR_ENV = "BMFLEET_SANDBOX_DIR"


def default_state_dir() -> Path:
    """``$BMFLEET_SANDBOX_DIR``, else ``<repo>/.sandbox``."""
    from bmfleet.sandbox import controlplane  # lazy: keeps `bmfleet <other command>` fast

    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    return controlplane.find_repo_root() / ".sandbox"


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``sandbox`` command and its subcommands."""
    parser = subparsers.add_parser("sandbox", help="run a local Kubernetes control plane with simulated nodes")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=None, help=f"default: ${STATE_DIR_ENV} or <repo>/.sandbox")

    up = sub.add_parser("up", parents=[common], help="start (idempotent); prints the admin kubeconfig path last")
    up.add_argument("--bin-dir", type=Path, default=None, help="use these binaries instead of building")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", parents=[common], help="stop the processes 'up' started")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", parents=[common], help="show the components, their PIDs and RSS")
    status.set_defaults(func=cmd_status)
    kubeconfig = sub.add_parser("kubeconfig", parents=[common], help="print the admin kubeconfig path")
    kubeconfig.set_defaults(func=cmd_kubeconfig)


def cmd_up(args: argparse.Namespace) -> int:
    from bmfleet.sandbox import controlplane  # lazy: keeps `bmfleet <other command>` fast

    state_dir = _state_dir(args)
    existing = controlplane.load_sandbox(state_dir)
    if existing is not None:
        print(existing.kubeconfig)
        return 0
    _log_progress()
    try:
        bin_dir = args.bin_dir or controlplane.find_binaries(controlplane.find_repo_root())
        sandbox = controlplane.start(state_dir, bin_dir)
    except controlplane.AlreadyRunningError:  # another session won the race
        return cmd_kubeconfig(args)
    except (controlplane.SandboxError, ComponentError, TimeoutError) as e:
        print(f"sandbox up failed: {e}", file=sys.stderr)
        return 1
    print(sandbox.kubeconfig)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from bmfleet.sandbox import controlplane  # lazy: keeps `bmfleet <other command>` fast

    state_dir = _state_dir(args)
    try:
        controlplane.stop(state_dir)
    except controlplane.SandboxError as e:
        print(f"sandbox down failed: {e}", file=sys.stderr)
        return 1
    print(f"sandbox in {state_dir} stopped", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bmfleet.sandbox import controlplane  # lazy: keeps `bmfleet <other command>` fast

    st = controlplane.status(_state_dir(args))
    if st.sandbox is None:
        print("not running (nothing recorded)")
        return 1
    for c in st.components:
        rss = f"{c.rss_kib / 1024:.0f} MiB" if c.rss_kib else "-"
        print(f"{c.name:<24} pid {c.pid:<8} {'alive' if c.alive else 'DEAD':<6} rss {rss}")
    print(f"apiserver {st.sandbox.api_url}: {'ready' if st.api_ok else 'NOT ready'}")
    print(f"kubeconfig {st.sandbox.kubeconfig}")
    return 0 if st.running else 1


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    from bmfleet.sandbox import controlplane  # lazy: keeps `bmfleet <other command>` fast

    sandbox = controlplane.load_sandbox(_state_dir(args))
    if sandbox is None:
        print("the sandbox is not running; start it with 'bmfleet sandbox up'", file=sys.stderr)
        return 1
    print(sandbox.kubeconfig)
    return 0


def _state_dir(args: argparse.Namespace) -> Path:
    path: Path = args.state_dir or default_state_dir()
    return path.resolve()


def _log_progress() -> None:
    """Progress goes to stderr so the kubeconfig path stays the last line on stdout."""
    logger = logging.getLogger("bmfleet.sandbox")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[sandbox] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
