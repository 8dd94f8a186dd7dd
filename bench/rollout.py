"""Roll one bmodel out to N simulated devices through the real gateway, in phases, and print what it cost.

Its own sandbox (started here, stopped at the end); the gateway as a separate process (`bmfleet gateway`) under the
chart's gateway identity, with TLS; N REAL device agents (bmfleet_agent.sim: one thread per agent, 500 per
process); a real bmodel (synthesized) in a file store. The rollout is a BModelRollout driven by the operator (its
rollout controller, as a process under the chart's identity), or with --via direct this script writes spec.desired
per phase itself (the gateway alone). Prints rollout wall time per phase, gateway and operator CPU seconds and RSS,
Kubernetes API requests (apiserver_request_total before/after), blob bytes served vs size x devices.

    .venv/bin/python bench/rollout.py --devices 1000 [--via rollout|direct] [--artifact-kib 256] [--phases 10,50,100]
    .venv/bin/python bench/rollout.py --devices 1000,3000,10000 --agents light      # the curve, one line per size
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "agent")]

from kubernetes import client  # noqa: E402
from tests.gateway.support import (  # noqa: E402
    BOOTSTRAP_SECRET,
    Devices,
    create_bootstrap_secret,
    desired_entry,
    ensure_edgedevice_crd,
    install_gateway_identity,
    make_tls,
    put_blob,
)

from bmfleet.bmodel import synth  # noqa: E402
from bmfleet.cli.devenv import (  # noqa: E402
    OperatorProcess,
    create_namespace,
    install_crds,
    install_operator_identity,
    wait_for,
)
from bmfleet.sandbox.controlplane import close_client, find_binaries, start, stop  # noqa: E402
from rollout_metrics import (  # noqa: E402
    MODEL,
    NS,
    StatusWatch,
    apiserver_requests,
    gateway_metrics,
    print_curve,
    proc_usage,
    report,
)

TOKEN_ENV = "BENCH_BOOTSTRAP_TOKEN"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(
    work: Path, kubeconfig: Path, tls: tuple[Path, Path, Path], store: Path, extra: list[str]
) -> tuple[Any, str, str]:
    port, admin = _free_port(), _free_port()
    profile = ["-m", "cProfile", "-o", str(work / "gateway.prof")] if os.environ.get("BENCH_PROFILE") else []
    args = [sys.executable, *profile, "-m", "bmfleet.cli.main", "gateway", f"--listen=127.0.0.1:{port}",
            f"--admin-listen=127.0.0.1:{admin}", f"--tls-cert={tls[1]}", f"--tls-key={tls[2]}", f"--namespace={NS}",
            f"--bootstrap-secret={BOOTSTRAP_SECRET}", f"--store-uri=file://{store}", f"--kubeconfig={kubeconfig}",
            f"--cache-dir={work / 'gw-cache'}", *extra]  # fmt: skip
    log = (work / "gateway.log").open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    admin_url = f"http://127.0.0.1:{admin}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(admin_url + "/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for(ready, 60, "gateway ready")
    return proc, f"https://127.0.0.1:{port}", admin_url


def start_agents(url: str, ca: Path, work: Path, n: int, per_process: int, token: str, kind: str) -> list[Any]:
    procs = []
    for p, first in enumerate(range(0, n, per_process)):
        count = min(per_process, n - first)
        args = [sys.executable, __file__, "--agent-worker", f"--gateway={url}", f"--ca={ca}",
                f"--state-dir={work / 'agents'}", f"--prefix=sim{p:02d}", f"--devices={count}",
                f"--agents={kind}"]  # fmt: skip
        log = (work / f"agents-{p}.log").open("ab")
        env = {**os.environ, TOKEN_ENV: token}
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.PIPE))
    return procs


def agent_worker(args: argparse.Namespace) -> int:
    """Runs in a child process: `--devices` real agents in threads until stdin closes."""
    import logging

    threading.stack_size(512 << 10)  # hundreds of threads that mostly wait in a long poll
    logging.basicConfig(level=logging.ERROR)
    if args.agents == "light":
        import asyncio

        import light_agents

        names = [f"{args.prefix}-{i:04d}" for i in range(args.devices)]
        asyncio.run(light_agents.run(args.gateway, args.ca, os.environ[TOKEN_ENV], names))
        return 0
    from bmfleet_agent import sim

    fleet = sim.Fleet(
        args.gateway, args.devices, args.state_dir, os.environ[TOKEN_ENV], ca_bundle=args.ca, prefix=args.prefix
    ).start()
    sys.stdin.read()  # the parent closes our stdin to stop us
    fleet.stop_event.set()
    return 0


def device_names(n: int, per_process: int) -> list[str]:
    return [
        f"sim{p:02d}-{i:04d}"
        for p, first in enumerate(range(0, n, per_process))
        for i in range(min(per_process, n - first))
    ]


def artifact(kib: int) -> bytes:
    """A real bmodel (one net, one stage, BM1684) padded with weights to about `kib` KiB."""
    return synth.classifier("bench", chip="BM1684", weights=synth.filler("weights/bench", max(0, kib * 1024 - 20000)))


def wait_phase(tracker: StatusWatch, names: list[str], digest: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (done := tracker.count(names, digest)) < len(names):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{len(names)} devices Active after {timeout:.0f}s")
        time.sleep(0.2)


def direct(devices: Devices, tracker: StatusWatch, names: list[str], entry: dict[str, Any], ns: Any) -> None:
    """Play the rollout controller: write spec.desired on each phase's devices, wait until all are Active."""
    done = 0
    for pct in ns.phases:
        cut = round(len(names) * pct / 100)
        batch, phase_t = names[done:cut], time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: devices.set_desired(n, [entry], version=1), batch))
        written = time.monotonic() - phase_t
        wait_phase(tracker, names[:cut], entry["digest"], ns.timeout)
        print(f"phase {pct:3d}%: {len(batch):5d} devices, desired written in {written:5.1f}s, "
              f"all {cut} Active after {time.monotonic() - phase_t:5.1f}s", flush=True)  # fmt: skip
        done = cut


def create_rollout(api: client.ApiClient, entry: dict[str, Any], ns: Any) -> None:
    """A paused BModelRollout over every device; returns once the operator has written its status."""
    artifact = {k: entry[k] for k in ("digest", "uri", "size", "chip")}
    strategy = {"phases": [{"percent": p} for p in ns.phases], "maxInFlight": ns.max_in_flight or ns.devices}
    spec = {"artifact": artifact, "modelName": MODEL, "selector": {}, "strategy": strategy, "paused": True}
    body = {"apiVersion": "bmfleet.io/v1alpha1", "kind": "BModelRollout", "metadata": {"name": "bench"}, "spec": spec}
    custom: Any = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("bmfleet.io", "v1alpha1", NS, "bmodelrollouts", body)

    def seen() -> bool:
        obj = custom.get_namespaced_custom_object("bmfleet.io", "v1alpha1", NS, "bmodelrollouts", "bench")
        return bool((obj.get("status") or {}).get("observedGeneration"))

    wait_for(seen, 900, "the operator to take up the rollout", interval=0.5)


def via_controller(
    api: client.ApiClient, tracker: StatusWatch, names: list[str], entry: dict[str, Any], ns: Any
) -> None:
    """Unpause the rollout: the real rollout controller (the operator process) drives the phases."""
    custom: Any = client.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object(
        "bmfleet.io", "v1alpha1", NS, "bmodelrollouts", "bench", {"spec": {"paused": False}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    t0 = time.monotonic()
    for pct in ns.phases:
        target = -(-len(names) * pct // 100)
        wait_for(lambda t=target: tracker.count(names, entry["digest"]) >= t, ns.timeout, f"{pct}%", interval=0.2)
        print(f"phase {pct:3d}%: {target:5d} devices Active after {time.monotonic() - t0:5.1f}s", flush=True)


def run(args: argparse.Namespace, work: Path) -> dict[str, float]:
    t0 = time.monotonic()
    sandbox = start(work / "sandbox", find_binaries(ROOT))
    print(f"sandbox up in {time.monotonic() - t0:.1f}s", flush=True)
    procs: list[Any] = []
    gw, op = None, None
    admin = sandbox.api_client()
    try:
        install_crds(sandbox)
        ensure_edgedevice_crd(sandbox)
        create_namespace(sandbox, NS)
        token = os.urandom(24).hex()
        create_bootstrap_secret(admin, NS, token)
        tls = make_tls(work / "tls")
        store = work / "store"
        data = artifact(args.artifact_kib)
        put_blob(store, data)
        gw_args = [f"--heartbeat={args.heartbeat}", f"--last-seen-interval={args.last_seen_interval}"]
        gw, url, admin_url = start_gateway(work, install_gateway_identity(sandbox, NS, work), tls, store, gw_args)
        tracker = StatusWatch(admin)
        entry = desired_entry(MODEL, data, f"file://{store}", rollout="bench")
        names = device_names(args.devices, args.per_process)
        t = time.monotonic()
        procs = start_agents(url, tls[0], work, args.devices, args.per_process, token, args.agents)
        wait_for(lambda: len(tracker.registered) >= args.devices, 600, f"{args.devices} registrations", interval=0.5)
        print(f"{args.devices} agents registered in {time.monotonic() - t:.1f}s", flush=True)
        if args.via == "rollout":
            # The operator starts with the whole fleet already there (it indexes every EdgeDevice first), then a
            # paused rollout; unpausing it starts the measured rollout.
            t = time.monotonic()
            identity = install_operator_identity(sandbox, work)
            op = OperatorProcess(identity, work / "operator.log", [NS]).start().wait_live()
            create_rollout(admin, entry, args)
            print(f"operator started and took up the rollout over {args.devices} devices in "
                  f"{time.monotonic() - t:.1f}s", flush=True)  # fmt: skip
        time.sleep(args.settle)  # let first reports and polls settle so the rollout is measured on a quiet fleet
        api0, gwm0, cpu0 = apiserver_requests(sandbox), gateway_metrics(admin_url), proc_usage(gw.pid)
        op0 = proc_usage(op.proc.pid) if op and op.proc else None
        start_all = time.monotonic()
        if op is not None:
            via_controller(admin, tracker, names, entry, args)
        else:
            direct(Devices(admin, NS), tracker, names, entry, args)
        wall = time.monotonic() - start_all
        time.sleep(args.batch_settle)  # the last flush of status writes
        api1, gwm1, cpu1 = apiserver_requests(sandbox), gateway_metrics(admin_url), proc_usage(gw.pid)
        figures = report(args, data, wall, api0, api1, gwm0, gwm1, cpu0, cpu1)
        if op is not None and op.proc and op0:
            op1 = proc_usage(op.proc.pid)
            cpu = op1[0] - op0[0]
            print(f"operator CPU:             {cpu:.1f} s during the rollout ({cpu / wall:.2f} cores on average); "
                  f"RSS {op1[1] / 1024:.0f} MiB (peak {op1[2] / 1024:.0f} MiB)")  # fmt: skip
            figures |= {"operatorCpu": cpu, "operatorCores": cpu / wall,
                        "operatorRssMiB": op1[2] / 1024}  # fmt: skip
        lines = (work / "gateway.log").read_text().splitlines()
        problems = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln]
        print(f"gateway log: {len(problems)} warnings/errors", *problems[:5], sep="\n  ")
        return figures
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if op is not None:
            op.stop()
        if gw is not None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(20)
            except subprocess.TimeoutExpired:
                gw.kill()
        close_client(admin)
        stop(work / "sandbox")


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--devices", type=lambda s: [int(x) for x in s.split(",")], default=[100],
                   help="fleet size; a list (1000,3000,10000) runs each in turn and prints the curve")  # fmt: skip
    p.add_argument("--artifact-kib", type=int, default=256)
    p.add_argument("--phases", type=lambda s: [int(x) for x in s.split(",")], default=[10, 50, 100])
    p.add_argument("--per-process", type=int, default=500, help="agents per worker process")
    p.add_argument(
        "--agents",
        choices=["real", "light"],
        default="real",
        help="real: bmfleet_agent (a thread each); light: protocol-level agents on asyncio (bench/light_agents.py)",
    )
    p.add_argument(
        "--via",
        choices=["rollout", "direct"],
        default="rollout",
        help="rollout: a BModelRollout driven by the operator; direct: this script writes spec.desired",
    )
    p.add_argument("--max-in-flight", type=int, default=0, help="the rollout's maxInFlight (default: all devices)")
    p.add_argument("--heartbeat", type=float, default=60, help="the gateway's --heartbeat (Online=False after 3x)")
    p.add_argument("--last-seen-interval", type=float, default=120, help="the gateway's --last-seen-interval")
    p.add_argument("--timeout", type=float, default=900, help="seconds per phase")
    p.add_argument("--settle", type=float, default=5, help="quiet seconds after registration")
    p.add_argument("--batch-settle", type=float, default=2)
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs of gateway, operator, agents)")
    p.add_argument("--agent-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gateway", help=argparse.SUPPRESS)
    p.add_argument("--ca", help=argparse.SUPPRESS)
    p.add_argument("--state-dir", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.agent_worker:
        (args.devices,) = args.devices  # one count per worker process
        return agent_worker(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (sandbox, processes) on SIGTERM
    rows = []
    for n in args.devices:
        one = argparse.Namespace(**{**vars(args), "devices": n})
        if args.keep:
            work = tempfile.mkdtemp(prefix="bmfleet-rollout-")
            print(f"work dir (kept): {work}", flush=True)
            rows.append(run(one, Path(work)))
            continue
        with tempfile.TemporaryDirectory(prefix="bmfleet-rollout-") as tmp:
            rows.append(run(one, Path(tmp)))
    if len(rows) > 1:
        print_curve(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
