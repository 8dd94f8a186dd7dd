"""The moving parts of the fleet path as separate processes on loopback: `bmfleet gateway` under the chart's
gateway ServiceAccount and real `bmfleet_agent` processes (one state directory each); and the body of a publishing
BModelBuild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from tests.conftest import ROOT
from tests.gateway.support import BOOTSTRAP_SECRET
from tests.store.servers import free_port, http_status

MODEL = "tiny"


@dataclass
class Inputs:
    """One ONNX classifier per release (seed 0 is the cache-shared one) and the calibration folder, with digests
    declared so no resolve Job runs."""

    models: dict[int, tuple[Path, str]]
    calibration: tuple[Path, str]


def release_build(
    name: str, inputs: Inputs, registry_port: int, rollout: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    """A real tpu-mlir INT8 BM1684 build of the tiny classifier, one stage [1,3,32,32], stored in the PVC, pushed
    to the registry and rolled out by spec.publish.rollout."""
    model, model_sha = inputs.models[seed]
    calib, calib_sha = inputs.calibration
    spec = {
        "toolchain": {"name": "tpu-mlir"},
        "model": {"format": "onnx", "uri": f"file://{model}", "sha256": model_sha},
        "chip": "BM1684",
        "precision": "INT8",
        "netName": MODEL,
        "shapes": [{"shape": "[1,3,32,32]"}],
        "calibration": {"datasetUri": f"file://{calib}", "samples": 8, "sha256": calib_sha},
        "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
        "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
        "publish": {"registry": {"uri": f"oci://127.0.0.1:{registry_port}/models/{MODEL}"}, "rollout": rollout},
    }
    return {"apiVersion": "bmfleet.io/v1alpha1", "kind": "BModelBuild", "metadata": {"name": name}, "spec": spec}


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class GatewayProcess:
    """`bmfleet gateway` as its own process with its own kubeconfig (a token of the chart's gateway ServiceAccount),
    serving blobs from one OCI registry through its own cache."""

    def __init__(self, namespace: str, kubeconfig: Path, tls: tuple[Path, Path, Path], store_uri: str, work: Path):
        self.port, self.admin_port = free_port(), free_port()
        self.log = work / "gateway.log"
        self.argv = [
            sys.executable, "-m", "bmfleet.cli.main", "gateway", "-n", namespace,
            "--bootstrap-secret", BOOTSTRAP_SECRET, "--kubeconfig", str(kubeconfig),
            "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}",
            "--tls-cert", str(tls[1]), "--tls-key", str(tls[2]), "--store-uri", store_uri,
            "--cache-dir", str(work / "gw-cache"), "--heartbeat", "5", "--batch-interval", "0.2",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> GatewayProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if http_status(f"http://127.0.0.1:{self.admin_port}/readyz") == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway not ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of its /metrics (the admin port), by (name, sorted labels)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def blob_requests(self) -> dict[str, float]:
        """Blob requests by status code."""
        out: dict[str, float] = {}
        for (name, labels), value in self.metrics().items():
            tags = dict(labels)
            if name == "bmfleet_gateway_requests_total" and tags.get("route") == "blob":
                out[tags["code"]] = out.get(tags["code"], 0) + value
        return out

    def bytes_served(self) -> float:
        return self.metrics().get(("bmfleet_gateway_blob_bytes_served_total", ()), 0.0)


@dataclass
class AgentProcess:
    name: str
    chip: str
    state_dir: Path
    proc: subprocess.Popen[bytes]

    def slots(self) -> list[str]:
        """Digests of the verified model files on the box (any model name)."""
        found = sorted((self.state_dir / "models").glob("*/slots/sha256-*.bmodel"))
        return ["sha256:" + p.name.removeprefix("sha256-").removesuffix(".bmodel") for p in found]

    def partials(self) -> list[Path]:
        return sorted((self.state_dir / "models").glob("*/slots/*.part"))


@dataclass
class Fleet:
    """Real agent processes (`python -m bmfleet_agent`), stdlib only, each with its own state directory."""

    gateway: GatewayProcess
    ca_bundle: Path
    bootstrap: str
    work: Path
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def start(self, names: list[str], chip: str = "BM1684", labels: dict[str, str] | None = None,
              probe: Callable[[str], str] | None = None) -> list[AgentProcess]:  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env |= {"PYTHONPATH": str(ROOT / "agent"), "BMFLEET_BOOTSTRAP_TOKEN": self.bootstrap}
        started = []
        for name in names:
            state = self.work / name
            argv = [
                sys.executable, "-m", "bmfleet_agent", "--gateway", self.gateway.url,
                "--ca-bundle", str(self.ca_bundle), "--state-dir", str(state), "--device-id", name, "--chip", chip,
                "--poll-wait", "5", "--heartbeat", "5", "--sdk-version", "e2e",
                *(a for k, v in (labels or {}).items() for a in ("--label", f"{k}={v}")),
            ]  # fmt: skip
            if probe is not None:
                argv += ["--probe-command", probe(name)]
            state.mkdir(parents=True, exist_ok=True)
            with (self.work / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.agents[name] = AgentProcess(name, chip, state, proc)
            started.append(self.agents[name])
        return started

    def dead(self) -> list[str]:
        return [a.name for a in self.agents.values() if a.proc.poll() is not None]

    def stop(self) -> None:
        for a in self.agents.values():
            if a.proc.poll() is None:
                a.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15  # a long poll (5 s) ends before the agent sees the signal
        for a in self.agents.values():
            try:
                a.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                a.proc.kill()
                a.proc.wait(5)
