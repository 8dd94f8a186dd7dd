"""Prometheus metrics of the operator: controller-runtime's shape under a `bmfleet_` prefix (conventions §2.4).

Labels stay low-cardinality: never a build, rollout or device name. Step durations and gate numbers are
recorded once, on the reconcile whose status write turns a step Succeeded (`step_transitions` compares the
status read with the status written under the build's lock), so neither repeated reconciles nor a restart
count a step twice.

Rollout and fleet gauges are set by their controllers through `set_rollout_devices` / `set_fleet_devices`.
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime
from importlib import metadata
from typing import Any, NamedTuple, ParamSpec, TypeVar, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase

from bmfleet.api.build import Phase

log = logging.getLogger(__name__)

RESULTS = ("success", "error", "requeue", "requeue_after")
STEPS = ("resolve", "compile", "combine", "gate", "publish")
M = TypeVar("M", bound=MetricWrapperBase)
PHASES = (*get_args(Phase), "Unknown")  # Unknown: no status written yet
# controller-runtime's reconcile_time buckets (5 ms ... 60 s).
RECONCILE_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    *(1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60),
)
# A step is a Job: seconds (a cached combine) to hours (a large INT8 calibration).
STEP_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


class BuildPhases:
    """`bmfleet_builds{phase}` from a kopf index keyed by phase, which kopf keeps from the watch (deletions
    included), so the gauge needs no bookkeeping of its own."""

    def __init__(self) -> None:
        self.index: Mapping[str, Collection[Any]] | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("bmfleet_builds", "BModelBuilds by status.phase.", labels=["phase"])]

    def counts(self) -> dict[str, int]:
        """Builds per phase (every phase present, 0 when none). kopf changes the index in its own thread
        while this runs in the scrape's: a copy that raced with a change is taken again."""
        out = dict.fromkeys(PHASES, 0)
        for _ in range(5):
            try:
                found = {phase: len(store) for phase, store in list((self.index or {}).items())}
            except RuntimeError:  # changed size during iteration
                continue
            return out | found
        return out

    def collect(self) -> Iterator[Metric]:
        if self.index is None:  # not watching yet: no numbers rather than zeros
            return
        family = GaugeMetricFamily("bmfleet_builds", "BModelBuilds by status.phase.", labels=["phase"])
        for phase, count in self.counts().items():
            family.add_metric([phase], count)
        yield family


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """Every bmfleet metric, on one registry (tests make their own)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.catalogue: dict[str, tuple[str, tuple[str, ...]]] = {"bmfleet_builds": ("gauge", ("phase",))}
        self.reconcile_total = self._add(
            Counter,
            "bmfleet_controller_reconcile_total",
            "Reconciles per controller and result (success, error, requeue, requeue_after).",
            ("controller", "result"),
        )
        self.reconcile_errors = self._add(
            Counter, "bmfleet_controller_reconcile_errors_total", "Reconciles that raised.", ("controller",)
        )
        self.reconcile_time = self._add(
            Histogram,
            "bmfleet_controller_reconcile_time_seconds",
            "Time per reconcile.",
            ("controller",),
            buckets=RECONCILE_BUCKETS,
        )
        self.builds = BuildPhases()
        registry.register(self.builds)
        self.step_duration = self._add(
            Histogram,
            "bmfleet_step_duration_seconds",
            "Wall time of each pipeline step that succeeded (its Job or the worker's own timing; cache hits not).",
            ("step",),
            buckets=STEP_BUCKETS,
        )
        self.cache = self._add(
            Counter,
            "bmfleet_compile_cache_total",
            "Finished compile stages and combines with a store: taken from the cache (hit) or run (miss).",
            ("step", "result"),
        )
        self.gate_checks = self._add(
            Counter, "bmfleet_gate_checks_total", "Gate checks run, passed or failed.", ("gate", "result")
        )
        self.gate_metric = self._add(
            Gauge,
            "bmfleet_gate_metric",
            "The last gate run's value per metric: the INT8 model's (model=int8) and its FP32 baseline (model=fp32).",
            ("gate", "metric", "model"),
        )
        self.gate_delta = self._add(
            Gauge,
            "bmfleet_gate_delta_pp",
            "The last gate run's INT8 - FP32 difference per metric, in percentage points.",
            ("gate", "metric"),
        )
        self.rollout_devices = self._add(
            Gauge, "bmfleet_rollout_devices", "Devices of all rollouts by rollout state.", ("state",)
        )
        self.fleet_devices = self._add(
            Gauge, "bmfleet_fleet_devices", "EdgeDevices by state and chip.", ("state", "chip")
        )
        self.build_info = self._add(
            Gauge,
            "bmfleet_build_info",
            "Versions of the running operator (always 1).",
            ("version", "kopf_version", "python_version"),
        )
        self.build_info.labels(_version("bmfleet"), _version("kopf"), platform.python_version()).set(1)
        self._lock = threading.Lock()
        self._rollout_states: set[str] = set()
        self._fleet_keys: set[tuple[str, str]] = set()
        for step in STEPS:
            self.step_duration.labels(step)
        for step in ("compile", "combine"):
            for result in ("hit", "miss"):
                self.cache.labels(step, result)

    def _add(self, kind: type[M], name: str, doc: str, labels: tuple[str, ...], **kwargs: Any) -> M:
        self.catalogue[name] = (kind.__name__.lower(), labels)
        return kind(name, doc, labels, registry=self.registry, **kwargs)

    def sample_names(self) -> dict[str, tuple[str, ...]]:
        """Every series name a scrape can show (histograms as _bucket/_count/_sum), with its labels."""
        out: dict[str, tuple[str, ...]] = {}
        for name, (kind, labels) in self.catalogue.items():
            if kind == "histogram":
                out |= {f"{name}_bucket": (*labels, "le"), f"{name}_count": labels, f"{name}_sum": labels}
            else:
                out[name] = labels
        return out

    def controller(self, name: str) -> None:
        """Pre-create a controller's series, so rate() works from the first scrape (as controller-runtime)."""
        for result in RESULTS:
            self.reconcile_total.labels(name, result)
        self.reconcile_errors.labels(name)
        self.reconcile_time.labels(name)

    def reconciled(self, controller: str, result: str, seconds: float) -> None:
        self.reconcile_total.labels(controller, result).inc()
        self.reconcile_time.labels(controller).observe(seconds)
        if result == "error":
            self.reconcile_errors.labels(controller).inc()

    def record_status(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[StepTransition]:
        """Observe what a status write finished: step durations, cache hits and misses, gate results."""
        transitions = step_transitions(old, new)
        for t in transitions:
            if t.seconds is not None and not t.cache_hit:
                self.step_duration.labels(t.step).observe(t.seconds)
            if t.cache_hit is not None and t.step in ("compile", "combine"):
                self.cache.labels(t.step, "hit" if t.cache_hit else "miss").inc()
            if t.step == "gate":
                self.record_gate(new.get("gates") or {})
        return transitions

    def record_gate(self, gates: Mapping[str, Any]) -> None:
        """Count a gate run's checks; its numbers become the gauges' (one value per gate and metric)."""
        for check in gates.get("checks") or []:
            self.gate_checks.labels(check["gate"], "pass" if check.get("passed") else "fail").inc()
        for (gate, metric), worst in worst_checks(gates.get("checks") or []).items():
            for model, key in (("int8", "value"), ("fp32", "baseline")):
                if worst.get(key) is not None:
                    self.gate_metric.labels(gate, metric, model).set(float(worst[key]))
            if worst.get("delta_pp") is not None:
                self.gate_delta.labels(gate, metric).set(float(worst["delta_pp"]))

    def set_rollout_devices(self, counts: Mapping[str, int]) -> None:
        """Devices per rollout state, summed over every rollout. Replaces the last call's numbers: a state
        missing from `counts` drops to 0 (its series stays, so graphs show the drop)."""
        with self._lock:
            for state in self._rollout_states - set(counts):
                self.rollout_devices.labels(state).set(0)
            for state, n in counts.items():
                self.rollout_devices.labels(state).set(n)
            self._rollout_states |= set(counts)

    def set_fleet_devices(self, counts: Mapping[tuple[str, str], int]) -> None:
        """EdgeDevices per (state, chip), e.g. {("Ready", "BM1684"): 12}. Replaces the last call's numbers."""
        with self._lock:
            for state, chip in self._fleet_keys - set(counts):
                self.fleet_devices.labels(state, chip).set(0)
            for (state, chip), n in counts.items():
                self.fleet_devices.labels(state, chip).set(n)
            self._fleet_keys |= set(counts)


class StepTransition(NamedTuple):
    """A step that one status write turned Succeeded: its wall time if known, and whether the cache served
    it (None: the step has no cache, e.g. a build without a store)."""

    step: str
    seconds: float | None
    cache_hit: bool | None


_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _seconds(entry: Mapping[str, Any]) -> float | None:
    if isinstance(entry.get("seconds"), int | float):
        return float(entry["seconds"])
    start, end = entry.get("startTime"), entry.get("completionTime")
    try:
        return (datetime.strptime(str(end), _FMT) - datetime.strptime(str(start), _FMT)).total_seconds()
    except ValueError:
        return None


def _identity(entry: Mapping[str, Any]) -> str:
    """What makes two entries the same piece of work: the cache key (stable when a finished stage's Job is
    gone and the cache answers for it), else the Job's name."""
    return str(entry.get("cacheKey") or entry.get("job") or "")


def _entries(status: Mapping[str, Any], step: str) -> list[Mapping[str, Any]]:
    if step == "compile":
        return [e for e in status.get("shapes") or [] if isinstance(e, Mapping)]
    key = {"resolve": "inputs", "gate": "gates"}.get(step, step)
    entry = status.get(key)
    return [entry] if isinstance(entry, Mapping) else []


def step_transitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[StepTransition]:
    """Steps Succeeded in `new` that were not Succeeded (as the same work) in `old`. Pure: the controller
    calls it with the status it read and the status it wrote, under the build's lock."""
    out = []
    for step in STEPS:
        done_before = {_identity(e) for e in _entries(old, step) if e.get("state") == "Succeeded"}
        for entry in _entries(new, step):
            if entry.get("state") != "Succeeded" or _identity(entry) in done_before:
                continue
            hit = bool(entry.get("cacheHit")) if entry.get("cacheKey") else None
            out.append(StepTransition(step, None if hit else _seconds(entry), hit))
    return out


def metric_family(metric: str) -> str:
    """`cosine (output_0)` -> `cosine`: output tensor names would make the label unbounded."""
    return metric.split(" (", 1)[0]


def worst_checks(checks: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Per (gate, metric family), the check closest to failing: the largest value under a `max` rule, else
    the smallest value (minimums and drops: lower is worse)."""
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for check in checks:
        key = (str(check["gate"]), metric_family(str(check["metric"])))
        value = check.get("value")
        kept = out.get(key)
        if kept is None or (value is not None and kept.get("value") is None):
            out[key] = check
        elif value is not None:
            worse = value > kept["value"] if check.get("rule") == "max" else value < kept["value"]
            out[key] = check if worse else kept
    return out


REGISTRY = CollectorRegistry(auto_describe=True)
METRICS = Metrics(REGISTRY)
set_rollout_devices = METRICS.set_rollout_devices
set_fleet_devices = METRICS.set_fleet_devices
record_status = METRICS.record_status

P = ParamSpec("P")
R = TypeVar("R")


def timed(
    controller: str, result: Callable[[R], str] = lambda _: "success", metrics: Metrics = METRICS
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a reconcile function: its time, its result (`result` classifies the return value) and
    whether it raised, as controller-runtime counts them."""
    metrics.controller(controller)

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            except Exception:
                metrics.reconciled(controller, "error", time.perf_counter() - start)
                raise
            metrics.reconciled(controller, result(out), time.perf_counter() - start)
            return out

        return inner

    return wrap


def watch_builds(index: Mapping[str, Collection[Any]], metrics: Metrics = METRICS) -> None:
    """Hand the builds-by-phase index to the `bmfleet_builds` gauge."""
    metrics.builds.index = index


def serve(bind: str, registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics on `host:port` (`:8080` and `[::]:8080` too) in a daemon thread; returns the port."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104  (a metrics endpoint listens on the pod's address)
    # No `_created` series beside every counter and histogram (conventions §2.4).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    server, _ = start_http_server(int(port), host, registry=registry)
    bound = int(server.server_address[1])
    log.info("serving metrics on %s:%d/metrics", host, bound)
    return bound
