"""Command lines of the sandbox components (control-plane.md §2.4, §3.5, §7.3), all bound to 127.0.0.1."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bmfleet.sandbox.pki import Pki

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
HEALTH_PATHS = "/healthz,/readyz,/livez,/metrics"


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    kubelet: int


def etcd(bin_dir: Path, ports: Ports, data_dir: Path) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=sandbox",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sandbox={peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver(bin_dir: Path, ports: Ports, pki: Pki) -> list[str]:
    """Default admission plugins stay on (ServiceAccount, PodSecurity, TaintNodesByCondition...): KCM runs."""
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={pki.dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        # the loopback advertise address is useless in the kubernetes Endpoints; do not reconcile it
        "--endpoint-reconciler-type=none",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
    ]


def controller_manager(bin_dir: Path, ports: Ports, pki: Pki, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        *_delegated_auth(kubeconfig),
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--leader-elect=false",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.sa_key}",
        "--profiling=false",
    ]


def scheduler(bin_dir: Path, ports: Ports, pki: Pki, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        *_delegated_auth(kubeconfig),
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok(bin_dir: Path, ports: Ports, kubeconfig: Path, config: Path) -> list[str]:
    """kwok serves plain HTTP on loopback; nodes advertise it as their kubelet endpoint."""
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={kubeconfig}",
        f"--config={config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--node-ip=127.0.0.1",
        f"--node-port={ports.kwok}",
        f"--server-address=127.0.0.1:{ports.kwok}",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=40",
        "--enable-crds=Logs",  # pods the sandbox kubelet ran get a Logs object: `kubectl logs` works for them
    ]


def kubelet(ports: Ports, kubeconfig: Path, state_dir: Path) -> list[str]:
    """The sandbox kubelet (runs pods annotated sandbox.bmfleet.io/execute for real)."""
    return [
        sys.executable,
        "-m",
        "bmfleet.sandbox.kubelet",
        f"--kubeconfig={kubeconfig}",
        f"--state-dir={state_dir / 'kubelet'}",
        f"--port={ports.kubelet}",
    ]


def _delegated_auth(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
    ]
