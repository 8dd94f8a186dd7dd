"""``bmfleet-agent``: run the agent (forever, or ``--once``), or only recover the state directory."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

from bmfleet_agent import __version__
from bmfleet_agent.agent import Agent
from bmfleet_agent.config import KEYS, ConfigError, load


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bmfleet-agent",
        description="Keep this SOPHON box's bmodels in line with the bmfleet gateway. Settings come from "
        "--config (JSON), then BMFLEET_* environment variables, then flags.",
    )
    ap.add_argument("--config", help="JSON file (keys: " + ", ".join(k for k, _ in KEYS.values()) + ")")
    ap.add_argument("--gateway", help="gateway base URL, e.g. https://gw.example:8443 [BMFLEET_GATEWAY]")
    ap.add_argument("--ca-bundle", dest="ca_bundle", help="PEM CA bundle to verify the gateway [BMFLEET_CA_BUNDLE]")
    ap.add_argument("--state-dir", dest="state_dir", help="models, state and credential [BMFLEET_STATE_DIR]")
    ap.add_argument("--bootstrap-token-file", dest="bootstrap_token_file", help="file holding the bootstrap token")
    ap.add_argument("--device-id", dest="device_id", help="id to ask for at registration [BMFLEET_DEVICE_ID]")
    ap.add_argument("--chip", help="this device's chip, e.g. BM1684 [BMFLEET_CHIP]")
    ap.add_argument("--poll-wait", dest="poll_wait", type=int, help="long-poll seconds [BMFLEET_POLL_WAIT]")
    ap.add_argument("--heartbeat", type=float, help="status at least every N seconds [BMFLEET_HEARTBEAT]")
    ap.add_argument("--probe-command", dest="probe_command", help="command that must load {path} successfully")
    ap.add_argument("--sdk-version", dest="sdk_version", help="reported SDK version (default: detected)")
    ap.add_argument("--label", action="append", default=[], help="k=v label sent at registration (repeatable)")
    ap.add_argument("--once", action="store_true", help="do what can be done now, then exit (no long poll)")
    ap.add_argument("--recover-only", action="store_true", help="recover the state directory and exit")
    ap.add_argument("--status", action="store_true", help="print the local status as JSON and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--version", action="version", version=f"bmfleet-agent {__version__}")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    flags: Dict[str, Any] = {k: getattr(args, k, None) for k in KEYS if k != "bootstrap_token"}
    flags["bootstrap_token_file"] = args.bootstrap_token_file
    if args.label:
        flags["labels"] = dict(kv.split("=", 1) for kv in args.label)
    try:
        config = load(args.config, flags=flags)
    except ConfigError as e:
        print(f"bmfleet-agent: {e}", file=sys.stderr)
        return 2
    agent = Agent(config)
    agent.recover()
    if args.status:
        print(json.dumps(agent.status(), indent=2))
        return 0
    if args.recover_only:
        return 0
    if args.once:
        return 0 if agent.run_once() else 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return 0
