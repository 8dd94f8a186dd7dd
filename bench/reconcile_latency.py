"""Apply -> first compile Job created: p50/p99 over N builds, and the operator's RSS.

Runs against its own sandbox (started here, stopped at the end) with the operator as a separate process under
the chart's ServiceAccount, exactly as the integration tests run it. Latency is measured on one clock: the
time this script's create call returns vs the time a Job watch (opened before) delivers the Job's ADDED event.
Target (issue 2): p50 < 300 ms, p99 < 1 s.

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
from bmfleet.sandbox.controlplane import find_binaries, find_repo_root, start, stop

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between applies")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bmfleet-bench-"))
    t0 = time.monotonic()
    sandbox = start(work / "sandbox", find_binaries(find_repo_root()))
    print(f"sandbox up in {time.monotonic() - t0:.1f}s")
    try:
        install_crds(sandbox)
        create_namespace(sandbox, NAMESPACE)
        operator = OperatorProcess(install_operator_identity(sandbox, work), work / "operator.log").start()
        api = sandbox.api_client()
        custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
        first_job: dict[str, float] = {}
        ready = threading.Event()

        def watch_jobs() -> None:
            w = watch.Watch()
            ready.set()
            for ev in w.stream(batch.list_namespaced_job, NAMESPACE, timeout_seconds=600):
                if ev["type"] == "ADDED":
                    build = ev["object"].metadata.labels.get("bmfleet.io/build")
                    first_job.setdefault(build, time.monotonic())
                if len(first_job) >= args.builds:
                    w.stop()

        t = threading.Thread(target=watch_jobs, daemon=True)
        t.start()
        ready.wait(10)
        # Warm-up build (not measured): the first reconcile imports and connects lazily.
        custom.create_namespaced_custom_object(
            "bmfleet.io", "v1alpha1", NAMESPACE, "bmodelbuilds", _sample("warmup", 2)
        )
        wait_for(lambda: "warmup" in first_job, 30, "warm-up Job")
        applied: dict[str, float] = {}
        rss_peak = 0
        for i in range(args.builds):
            name = f"b{i:03d}"
            custom.create_namespaced_custom_object(
                "bmfleet.io", "v1alpha1", NAMESPACE, "bmodelbuilds", _sample(name, 2 + i % 6)
            )
            applied[name] = time.monotonic()
            rss_peak = max(rss_peak, operator.rss_kib() or 0)
            time.sleep(args.interval)
        wait_for(lambda: all(n in first_job for n in applied), 120, "a Job for every build")
        latencies = [(first_job[n] - applied[n]) * 1000 for n in applied]
        rss_end = operator.rss_kib() or 0
        print(f"builds: {len(latencies)} (interval {args.interval}s, 2 stages each)")
        print(
            f"apply -> first Job created: p50 {statistics.median(latencies):.0f} ms, "
            f"p90 {_percentile(latencies, 0.9):.0f} ms, p99 {_percentile(latencies, 0.99):.0f} ms, "
            f"max {max(latencies):.0f} ms   (target p50 < 300 ms, p99 < 1000 ms)"
        )
        print(
            f"operator RSS: {rss_end / 1024:.1f} MiB after {len(latencies) + 1} builds "
            f"(peak sampled {max(rss_peak, rss_end) / 1024:.1f} MiB)"
        )
        operator.stop()
        client.ApiClient.close(api)
    finally:
        stop(work / "sandbox")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
