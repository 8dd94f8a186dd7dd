"""Apply -> first compile Job created: p50/p99 over N builds, paced and in a burst, and the operator's RSS.

Runs against its own sandbox (started here, stopped at the end) with the operator as a separate process under
the chart's ServiceAccount, exactly as the integration tests run it. Latency is measured on one clock: from just
before this script sends the create request to the moment a Job watch (opened beforehand) delivers the build's
first Job. Target (issue 2): p50 < 300 ms, p99 < 1 s for builds applied the way people and GitOps tools apply
them (paced); the burst phase shows what queueing does when 50 arrive at once.

    .venv/bin/python bench/reconcile_latency.py [--builds 50] [--interval 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bmfleet.cli.devenv import OperatorProcess, create_namespace, install_crds, install_operator_identity, wait_for
from bmfleet.sandbox.controlplane import Sandbox, close_client, find_binaries, find_repo_root, start, stop

NAMESPACE = "bench"


def _sample(name: str, batch: int) -> dict[str, Any]:
    return {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": name},
        "spec": {
            "toolchain": {"name": "bmnetu"},
            "chip": "BM1684",
            "precision": "INT8",
            "model": {
                "format": "umodel",
                "uri": "https://m.example/ssd.prototxt",
                "weightsUri": "https://m.example/ssd.umodel",
            },
            "shapes": [{"inputs": [[batch, 3, 300, 300]]}, {"inputs": [[1, 3, 300, 300]]}],
            "placement": {"tpu": 0},  # latency of the operator, not of TPU capacity on 3 simulated nodes
        },
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class JobWatch:
    """First-Job arrival time per build, from one Job watch on the namespace."""

    def __init__(self, api: client.ApiClient) -> None:
        self.first: dict[str, float] = {}
        self._watch = watch.Watch()
        self._batch = client.BatchV1Api(api)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for ev in self._watch.stream(self._batch.list_namespaced_job, NAMESPACE, timeout_seconds=900):
                if ev["type"] == "ADDED":
                    self.first.setdefault(ev["object"].metadata.labels.get("bmfleet.io/build"), time.monotonic())
        except Exception:  # the sandbox stops under the watch at the end of the run
            return

    def stop(self) -> None:
        self._watch.stop()


def _phase(
    custom: client.CustomObjectsApi, jobs: JobWatch, op: OperatorProcess, prefix: str, n: int, interval: float
) -> tuple[list[float], int]:
    applied: dict[str, float] = {}
    rss_peak = 0
    for i in range(n):
        name = f"{prefix}{i:03d}"
        applied[name] = time.monotonic()
        custom.create_namespaced_custom_object(
            "bmfleet.io", "v1alpha1", NAMESPACE, "bmodelbuilds", _sample(name, 2 + i % 6)
        )
        rss_peak = max(rss_peak, op.rss_kib() or 0)
        if interval:
            time.sleep(interval)
    wait_for(lambda: all(b in jobs.first for b in applied), 180, f"a Job for every {prefix} build")
    return [(jobs.first[b] - t) * 1000 for b, t in applied.items()], max(rss_peak, op.rss_kib() or 0)


def _report(label: str, lat: list[float]) -> None:
    print(
        f"{label:<28} p50 {statistics.median(lat):6.0f} ms   p90 {_percentile(lat, 0.9):6.0f} ms   "
        f"p99 {_percentile(lat, 0.99):6.0f} ms   max {max(lat):6.0f} ms"
    )


def _run(sandbox: Sandbox, work: Path, args: argparse.Namespace) -> None:
    install_crds(sandbox)
    create_namespace(sandbox, NAMESPACE)
    op = OperatorProcess(install_operator_identity(sandbox, work), work / "operator.log").start().wait_live()
    api = sandbox.api_client()
    try:
        custom = client.CustomObjectsApi(api)
        jobs = JobWatch(api)
        # Warm-up (not measured): the operator's first reconcile connects and imports lazily.
        _phase(custom, jobs, op, "warmup", 1, 0)
        paced, rss_paced = _phase(custom, jobs, op, "p", args.builds, args.interval)
        burst, rss_burst = _phase(custom, jobs, op, "b", args.builds, 0)
        jobs.stop()
        print(f"builds per phase: {args.builds} (2 stages each); target p50 < 300 ms, p99 < 1000 ms")
        _report(f"paced (every {args.interval}s)", paced)
        _report("burst (back to back)", burst)
        print(
            f"operator RSS: {rss_paced / 1024:.1f} MiB after the paced phase, "
            f"{rss_burst / 1024:.1f} MiB peak after {2 * args.builds + 1} builds"
        )
    finally:
        op.stop()
        close_client(api)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--builds", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between applies in the paced phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bmfleet-bench-"))
    t0 = time.monotonic()
    sandbox = start(work / "sandbox", find_binaries(find_repo_root()))
    print(f"sandbox up in {time.monotonic() - t0:.1f}s")
    try:
        _run(sandbox, work, args)
    finally:
        stop(work / "sandbox")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
