"""Launch the components one by one, each waited for before the next (they depend on each other)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bmfleet.sandbox import components, probes, procs
from bmfleet.sandbox.pki import Pki
from bmfleet.sandbox.state import State

log = logging.getLogger(__name__)

ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubelet")
TIMEOUTS = {
    "etcd": 30.0,
    "kube-apiserver": 120.0,
    "kube-controller-manager": 60.0,
    "kube-scheduler": 60.0,
    "kwok": 30.0,
    "kubelet": 30.0,
}
KWOK_CONFIG = "kwok.yaml"
# mkdtemp makes a private 0700 directory, which is the safe way to use the shared tmpfs.
SHM = Path("/dev/shm")  # noqa: S108
ETCD_SHM_PREFIX = "bmfleet-etcd-"


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    port: int
    probe: Callable[[], bool]


def steps(st: State, state_dir: Path, pki: Pki) -> list[Step]:
    """The components in start order, each with the probe that says it is ready."""
    bin_dir = Path(st.bin_dir)
    kubeconfig = Path(st.kubeconfig)
    ports = components.Ports(**st.ports)
    admin_tls = probes.tls_context(pki.ca_cert, pki.admin_cert, pki.admin_key)
    serving_tls = probes.tls_context(pki.ca_cert)
    kcm, sched = ports.controller_manager, ports.scheduler
    return [
        Step(
            "etcd",
            components.etcd(bin_dir, ports, Path(st.etcd_data_dir)),
            ports.etcd,
            lambda: probes.etcd_healthy(ports.etcd),
        ),
        Step(
            "kube-apiserver",
            components.apiserver(bin_dir, ports, pki),
            ports.apiserver,
            lambda: probes.ok(f"{st.api_url}/readyz", admin_tls),
        ),
        Step(
            "kube-controller-manager",
            components.controller_manager(bin_dir, ports, pki, kubeconfig),
            kcm,
            lambda: probes.ok(f"https://127.0.0.1:{kcm}/healthz", serving_tls),
        ),
        Step(
            "kube-scheduler",
            components.scheduler(bin_dir, ports, pki, kubeconfig),
            sched,
            lambda: probes.ok(f"https://127.0.0.1:{sched}/healthz", serving_tls),
        ),
        Step(
            "kwok",
            components.kwok(bin_dir, ports, kubeconfig, state_dir / KWOK_CONFIG),
            ports.kwok,
            lambda: probes.ok(f"http://127.0.0.1:{ports.kwok}/healthz"),
        ),
        Step(
            "kubelet",
            components.kubelet(ports, kubeconfig, state_dir),
            ports.kubelet,
            lambda: probes.ok(f"http://127.0.0.1:{ports.kubelet}/healthz"),
        ),
    ]


def start_components(st: State, state_dir: Path, pki: Pki) -> None:
    """Start each step, record it in state.json at once (so stop() can find it), then wait for it."""
    env = child_env(state_dir)
    for step in steps(st, state_dir, pki):
        component = procs.launch(step.name, step.argv, state_dir / "logs", env, step.port)
        st.components.append(component)
        st.save(state_dir)
        st.timings[step.name] = round(procs.wait_ready(component, step.probe, TIMEOUTS[step.name]), 2)
        log.info("%s ready in %.1fs (pid %d, port %d)", step.name, st.timings[step.name], component.pid, step.port)


def child_env(state_dir: Path) -> dict[str, str]:
    """Inherited env minus KUBECONFIG, with a clean HOME so kwok never merges ~/.kwok/kwok.yaml."""
    home = state_dir / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(home)
    return env


def etcd_data_dir(state_dir: Path) -> Path:
    """A fresh data dir, on /dev/shm when available (etcd's fsyncs dominate apiserver latency)."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=ETCD_SHM_PREFIX, dir=SHM))
    path = state_dir / "etcd"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def remove_etcd_data(state_dir: Path, path: Path) -> None:
    """Remove only directories :func:`etcd_data_dir` creates, whatever state.json says."""
    ours = path == state_dir / "etcd" or (path.parent == SHM and path.name.startswith(ETCD_SHM_PREFIX))
    if ours:
        shutil.rmtree(path, ignore_errors=True)
