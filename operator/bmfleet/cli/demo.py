"""`bmfleet demo` (what `make demo` runs): sandbox up, CRDs and the chart's identity installed, the operator
running as a process, the seed's two-shape build applied and followed until its compile Jobs complete."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from bmfleet.cli.devenv import (
    OperatorProcess,
    create_namespace,
    install_crds,
    install_operator_identity,
    kubectl,
)
from bmfleet.sandbox.cli import default_state_dir
from bmfleet.sandbox.controlplane import Sandbox, find_binaries, find_repo_root, load_sandbox, start
from bmfleet.sandbox.stages import RUN_TIME_ANNOTATION

NAMESPACE = "bmfleet-demo"


def _sandbox(state_dir: Path) -> Sandbox:
    running = load_sandbox(state_dir)
    if running is not None:
        print(f"sandbox already running ({running.api_url})")
        return running
    print("starting the sandbox (etcd, kube-apiserver, controller-manager, scheduler, kwok) ...")
    t0 = time.monotonic()
    sandbox = start(state_dir, find_binaries(find_repo_root()))
    print(f"sandbox up in {time.monotonic() - t0:.1f}s at {sandbox.api_url}")
    return sandbox


def render(build: dict[str, Any], pods: dict[str, str]) -> str:
    """A status table a person can read at a glance: the build, then one row per stage."""
    st = build.get("status") or {}
    conds = {c["type"]: c for c in st.get("conditions") or []}
    ready = conds.get("Ready", {})
    lines = [
        f"{build['metadata']['name']}: phase={st.get('phase', '-')} Ready={ready.get('status', '-')} "
        f"({ready.get('reason', '-')}) stages={st.get('shapesReady', '-')} gen={build['metadata']['generation']} "
        f"observed={st.get('observedGeneration', '-')}",
        f"  {'STAGE':<6}{'SHAPE':<22}{'STATE':<11}{'NODE':<11}{'SECONDS':<9}JOB",
    ]
    for s in st.get("shapes") or []:
        seconds = "-" if s.get("seconds") is None else f"{s['seconds']:.0f}"
        node = pods.get(s.get("job") or "", "-")
        lines.append(f"  {s['index']:<6}{s['shape']:<22}{s['state']:<11}{node:<11}{seconds:<9}{s.get('job', '-')}")
    return "\n".join(lines)


def _pods_by_job(sandbox: Sandbox) -> dict[str, str]:
    out = json.loads(kubectl(sandbox, "get", "pods", "-n", NAMESPACE, "-o", "json"))
    return {p["metadata"]["labels"].get("job-name", ""): p["spec"].get("nodeName") or "-" for p in out["items"]}


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end; leaves the sandbox up for exploring (`bmfleet sandbox down` stops it)."""
    repo = find_repo_root()
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    sandbox = _sandbox(state_dir)
    install_crds(sandbox)
    operator = OperatorProcess(install_operator_identity(sandbox, state_dir), state_dir / "operator.log").start()
    print(f"operator running as the chart's ServiceAccount (log: {operator.log_path})")
    try:
        create_namespace(sandbox, NAMESPACE)
        sample = yaml.safe_load((repo / "docs" / "examples" / "bmodelbuild.yaml").read_text())
        # Simulated nodes finish a compile at once; let them take a few seconds so the progress shows.
        sample["spec"].setdefault("placement", {})["podAnnotations"] = {RUN_TIME_ANNOTATION: f"{args.run_time}s"}
        manifest = yaml.safe_dump(sample)
        kubectl(sandbox, "delete", "-n", NAMESPACE, "bmb", "ssd300", "--ignore-not-found", "--wait=true")
        print(kubectl(sandbox, "apply", "-n", NAMESPACE, "-f", "-", stdin=manifest).strip())
        last, deadline = "", time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            build = json.loads(kubectl(sandbox, "get", "bmb", "ssd300", "-n", NAMESPACE, "-o", "json"))
            table = render(build, _pods_by_job(sandbox))
            if table != last:
                print(table, flush=True)
                last = table
            phase = (build.get("status") or {}).get("phase")
            if (
                phase in ("Compiled", "Failed", "Stalled")
                and build["status"].get("observedGeneration") == build["metadata"]["generation"]
            ):
                break
            if not operator.alive:
                print("operator exited:\n" + operator.log_tail())
                return 1
            time.sleep(0.5)
        print()
        print(kubectl(sandbox, "get", "bmb", "-n", NAMESPACE, "-o", "wide"))
        print(kubectl(sandbox, "get", "jobs,pods", "-n", NAMESPACE, "-o", "wide"))
        print(
            kubectl(
                sandbox,
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                "involvedObject.kind=BModelBuild",
                "--sort-by=.metadata.creationTimestamp",
            )
        )
        print(f"sandbox stays up: KUBECONFIG={sandbox.kubeconfig} {sandbox.kubectl} get bmb -A")
        print("stop it with: .venv/bin/bmfleet sandbox down")
        return 0 if phase == "Compiled" else 1
    finally:
        operator.stop()
