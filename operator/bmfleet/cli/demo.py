"""`bmfleet demo` (what `make demo` runs): the sandbox, the CRDs and the chart's identity, the operator as a
process, then a real build: a small ONNX classifier compiled INT8 for BM1684 by TPU-MLIR at batch 4 and 1 in
Jobs the sandbox kubelet really runs, combined into one bmodel in a PVC store, followed to the end."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from bmfleet.bmodel import format_text, read_model
from bmfleet.cli.devenv import (
    OperatorProcess,
    create_namespace,
    create_store_claim,
    install_crds,
    install_operator_identity,
    kubectl,
)
from bmfleet.sandbox.cli import default_state_dir
from bmfleet.sandbox.controlplane import Sandbox, find_binaries, find_repo_root, load_sandbox, start
from bmfleet.sandbox.models import write_calibration_dir, write_classifier
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION

NAMESPACE = "bmfleet-demo"
BUILD = "tiny"
DONE = ("Combined", "Failed", "Stalled")


def _sandbox(state_dir: Path) -> Sandbox:
    running = load_sandbox(state_dir)
    if running is not None:
        print(f"sandbox already running ({running.api_url})")
        return running
    print("starting the sandbox (etcd, kube-apiserver, controller-manager, scheduler, kwok, kubelet) ...")
    t0 = time.monotonic()
    sandbox = start(state_dir, find_binaries(find_repo_root()))
    print(f"sandbox up in {time.monotonic() - t0:.1f}s at {sandbox.api_url}")
    return sandbox


def render(build: dict[str, Any], pods: dict[str, str]) -> str:
    """A status table a person can read at a glance: the build, one row per stage, then the combine."""
    st = build.get("status") or {}
    ready: dict[str, Any] = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
    lines = [
        f"{build['metadata']['name']}: phase={st.get('phase', '-')} Ready={ready.get('status', '-')} "
        f"({ready.get('reason', '-')}) stages={st.get('shapesReady', '-')}",
        f"  {'STEP':<11}{'SHAPE':<16}{'STATE':<11}{'NODE':<11}{'SECONDS':<9}{'DIGEST':<21}JOB",
    ]
    rows = [(f"compile {s['index']}", s["shape"], s) for s in st.get("shapes") or []]
    if st.get("combine"):
        rows.append(("combine", "-", st["combine"]))
    for step, shape, s in rows:
        seconds = "-" if s.get("seconds") is None else f"{s['seconds']:.0f}"
        digest = (s.get("digest") or "-")[:19]
        job = s.get("job") or ("(cache)" if s.get("cacheHit") else "-")
        node = pods.get(s.get("job") or "", "-")
        lines.append(f"  {step:<11}{shape:<16}{s['state']:<11}{node:<11}{seconds:<9}{digest:<21}{job}")
    return "\n".join(lines)


def _pods_by_job(sandbox: Sandbox) -> dict[str, str]:
    out = json.loads(kubectl(sandbox, "get", "pods", "-n", NAMESPACE, "-o", "json"))
    return {p["metadata"]["labels"].get("job-name", ""): p["spec"].get("nodeName") or "-" for p in out["items"]}


def _prepare(sandbox: Sandbox, state_dir: Path) -> Path:
    """The model and calibration samples on a `models` claim, an `artifacts` claim for the store."""
    create_namespace(sandbox, NAMESPACE)
    demo = state_dir / "demo"
    write_classifier(demo / "models" / "tiny" / "tiny.onnx")
    write_calibration_dir(demo / "models" / "tiny" / "calibration")
    create_store_claim(sandbox, NAMESPACE, "models", demo / "models")
    create_store_claim(sandbox, NAMESPACE, "artifacts", demo / "artifacts")
    return demo


def _follow(sandbox: Sandbox, operator: OperatorProcess, timeout: float) -> dict[str, Any]:
    last, deadline = "", time.monotonic() + timeout
    build: dict[str, Any] = {}
    while time.monotonic() < deadline and operator.alive:
        build = json.loads(kubectl(sandbox, "get", "bmb", BUILD, "-n", NAMESPACE, "-o", "json"))
        table = render(build, _pods_by_job(sandbox))
        if table != last:
            print(table, flush=True)
            last = table
        st = build.get("status") or {}
        if st.get("phase") in DONE and st.get("observedGeneration") == build["metadata"]["generation"]:
            break
        time.sleep(0.5)
    return build


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end; leaves the sandbox up for exploring (`bmfleet sandbox down` stops it)."""
    repo = find_repo_root()
    state_dir = (Path(args.state_dir) if args.state_dir else default_state_dir()).resolve()
    sandbox = _sandbox(state_dir)
    install_crds(sandbox)
    operator = OperatorProcess(install_operator_identity(sandbox, state_dir), state_dir / "operator.log").start()
    print(f"operator running as the chart's ServiceAccount (log: {operator.log_path})")
    try:
        demo = _prepare(sandbox, state_dir)
        sample = yaml.safe_load((repo / "docs" / "examples" / "bmodelbuild-tpu-mlir.yaml").read_text())
        # The sandbox kubelet runs these pods for real (kwok would only simulate them).
        sample["spec"]["placement"] = {"podAnnotations": {EXECUTE_ANNOTATION: "true"}}
        kubectl(sandbox, "delete", "-n", NAMESPACE, "bmb", BUILD, "--ignore-not-found", "--wait=true")
        print(kubectl(sandbox, "apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(sample)).strip())
        build = _follow(sandbox, operator, args.timeout)
        if not operator.alive:
            print("operator exited:\n" + operator.log_tail())
            return 1
        print()
        print(kubectl(sandbox, "get", "bmb", "-n", NAMESPACE, "-o", "wide"))
        print(kubectl(sandbox, "get", "jobs,pods", "-n", NAMESPACE, "-o", "wide"))
        st = build.get("status") or {}
        if st.get("phase") != "Combined":
            print(json.dumps(st, indent=2))
            return 1
        combined = demo / "artifacts" / st["combine"]["uri"].removeprefix("pvc://artifacts/")
        print(f"combined bmodel: {combined}\n{format_text(read_model(combined))}")
        print(f"sandbox stays up: KUBECONFIG={sandbox.kubeconfig} {sandbox.kubectl} get bmb -A")
        print("stop it with: .venv/bin/bmfleet sandbox down")
        return 0
    finally:
        operator.stop()
