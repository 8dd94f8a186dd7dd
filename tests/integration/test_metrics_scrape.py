"""The operator's /metrics on the sandbox: an operator of its own (`--metrics-bind`, this namespace only) while
the session's is stopped, so no other operator finishes this build's steps first."""

from __future__ import annotations

import socket
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bmfleet.cli.devenv import OperatorProcess, wait_for
from bmfleet.controllers.metrics import PHASES
from tests.integration.conftest import ARTIFACTS, Builds, sample

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def scraped_operator(operator: OperatorProcess, operator_kubeconfig: Path, namespace: str) -> Iterator[int]:
    port = _free_port()
    operator.stop()
    mine = OperatorProcess(
        operator_kubeconfig,
        ARTIFACTS / "operator-metrics.log",
        namespaces=[namespace],
        extra_args=[f"--metrics-bind=127.0.0.1:{port}"],
    )
    try:
        mine.start()
        wait_for(lambda: _answers(port), 30, "the metrics endpoint")
        yield port
    finally:
        mine.stop()
        operator.start()


def _answers(port: int) -> bool:
    try:
        return bool(scrape(port))
    except OSError:
        return False


def test_a_finished_build_in_the_metrics(builds: Builds, scraped_operator: int, namespace: str) -> None:
    port = scraped_operator
    builds.create(sample("measured"))
    stalled = sample("waits")
    stalled["spec"]["model"] = {"format": "umodel", "uri": "pvc://absent/m.prototxt", "weightsUri": "pvc://absent/w"}
    builds.create(stalled)
    done = builds.wait_condition("measured", "Compiled", "True", timeout=90)
    builds.wait_condition("waits", "Stalled", "True", timeout=30)
    stages = len(done["status"]["shapes"])

    def phases_agree() -> Samples | None:
        samples = scrape(port)
        items = builds.custom.list_namespaced_custom_object("bmfleet.io", "v1alpha1", namespace, "bmodelbuilds")
        want = Counter((b.get("status") or {}).get("phase") or "Unknown" for b in items["items"])
        have = {p: get(samples, "bmfleet_builds", phase=p) for p in PHASES}
        return samples if have == {p: float(want.get(p, 0)) for p in PHASES} else None

    samples = wait_for(phases_agree, 30, "bmfleet_builds to match the builds' status.phase")
    assert get(samples, "bmfleet_builds", phase="Compiled") == 1
    assert get(samples, "bmfleet_builds", phase="Stalled") == 1

    ok = get(samples, "bmfleet_controller_reconcile_total", controller="bmodelbuild", result="success")
    assert ok is not None and ok > 0
    # The missing claim is retried on a timer: a requeue, not an error.
    requeued = get(samples, "bmfleet_controller_reconcile_total", controller="bmodelbuild", result="requeue_after")
    assert requeued is not None and requeued >= 1
    assert get(samples, "bmfleet_controller_reconcile_errors_total", controller="bmodelbuild") == 0
    timed = get(samples, "bmfleet_controller_reconcile_time_seconds_count", controller="bmodelbuild")
    assert timed is not None and timed > 0
    # Each stage's compile observed exactly once, however many reconciles saw it finished.
    assert get(samples, "bmfleet_step_duration_seconds_count", step="compile") == stages == 2
    assert get(samples, "bmfleet_step_duration_seconds_count", step="combine") == 0
    # A build without a store uses no cache: neither hit nor miss.
    assert get(samples, "bmfleet_compile_cache_total", step="compile", result="miss") == 0
    assert get(samples, "bmfleet_compile_cache_total", step="compile", result="hit") == 0
    assert any(name == "bmfleet_build_info" for name, _ in samples)
