"""Driving the sandbox like a user would: install the CRDs and the chart's identity, run the operator as a
process under that identity, apply samples. Shared by `bmfleet demo`, the integration tests and the bench,
so all three exercise the same path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bmfleet.api.crdgen import dump_yaml
from bmfleet.api.crds import all_crds
from bmfleet.sandbox.controlplane import Sandbox, find_repo_root, token_kubeconfig
from bmfleet.sandbox.kubeconfig import require_loopback
from bmfleet.sandbox.procs import free_ports

OPERATOR_NAMESPACE = "bmfleet-system"
RELEASE = "bmfleet"
T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A condition did not become true in time."""


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` (no bare sleeps in callers)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def kubectl(sandbox: Sandbox, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the sandbox's kubectl as admin; only ever against the loopback sandbox."""
    require_loopback(sandbox.kubeconfig)
    proc = subprocess.run(
        [str(sandbox.kubectl), f"--kubeconfig={sandbox.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr


def install_crds(sandbox: Sandbox) -> None:
    """Apply the generated CRDs and wait until the API server serves them: Established, and lists answered (a
    fresh CRD's watch cache refuses lists with 429 "storage is (re)initializing" for about a second; a
    controller started then backs off a whole second before its first list)."""
    kubectl(sandbox, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=dump_yaml(all_crds()))
    for crd in all_crds():
        kubectl(sandbox, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd['metadata']['name']}")
        plural = f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
        wait_for(partial(_lists, sandbox, plural), 60, f"the API server to list {plural}", interval=0.1)


def _lists(sandbox: Sandbox, plural: str) -> bool:
    try:
        kubectl(sandbox, "get", plural, "--all-namespaces")
    except RuntimeError:
        return False
    return True


def helm_binary(repo: Path) -> Path:
    """helm, built from the Go module proxy into the cache (no-op when cached)."""
    out = subprocess.run(["bash", str(repo / "hack" / "build-helm.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def render_chart(repo: Path, namespace: str = OPERATOR_NAMESPACE, **values: str) -> list[dict[str, Any]]:
    """`helm template` of charts/bmfleet: the manifests a real install would create."""
    sets = [f"--set={k}={v}" for k, v in values.items()]
    out = subprocess.run(
        [
            str(helm_binary(repo)),
            "template",
            RELEASE,
            str(repo / "charts" / "bmfleet"),
            "--namespace",
            namespace,
            *sets,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def helm_install(sandbox: Sandbox, *values: str) -> None:
    """`helm upgrade --install` of charts/bmfleet into the sandbox (namespace enforcing Pod Security
    `restricted`): CRDs, RBAC, the operator Deployment and the rest, exactly as a platform team installs it."""
    repo = find_repo_root()
    create_namespace(sandbox, OPERATOR_NAMESPACE)
    subprocess.run(
        [
            str(helm_binary(repo)), "upgrade", "--install", RELEASE, str(repo / "charts" / "bmfleet"),
            "--namespace", OPERATOR_NAMESPACE, "--kubeconfig", str(sandbox.kubeconfig), "--timeout", "120s",
            *(f"--set={v}" for v in values),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip


def _is_operator(doc: dict[str, Any]) -> bool:
    return bool(doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator")


def install_operator_identity(sandbox: Sandbox, workdir: Path) -> Path:
    """Install the chart with `helm install`, then return a kubeconfig holding a TokenRequest token for the
    ServiceAccount it created: the operator runs with exactly the rights the chart grants."""
    helm_install(sandbox)
    deployment = next(d for d in render_chart(find_repo_root()) if d["kind"] == "Deployment" and _is_operator(d))
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    return token_kubeconfig(sandbox, OPERATOR_NAMESPACE, sa, workdir / "operator.kubeconfig")


def create_namespace(sandbox: Sandbox, name: str, enforce: str = "restricted") -> None:
    """A namespace whose pods must pass Pod Security `enforce` (default: restricted)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": enforce,
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def create_store_claim(sandbox: Sandbox, namespace: str, claim: str, host_dir: Path) -> None:
    """A PVC bound to a hostPath PV on `host_dir` (static provisioning; the sandbox has no provisioner)."""
    host_dir.mkdir(parents=True, exist_ok=True)
    host_dir.chmod(0o777)  # the worker runs as a non-root UID, as Pod Security restricted requires
    pv_name = f"{namespace}-{claim}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(host_dir), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "10Gi"}},
        },
    }
    kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump_all([pv, pvc]))
    kubectl(sandbox, "wait", "--for=jsonpath={.status.phase}=Bound", "--timeout=60s", "-n", namespace, f"pvc/{claim}")


@dataclass
class OperatorProcess:
    """`bmfleet operator` as a child process, as it would run in its pod (own identity, own process)."""

    kubeconfig: Path
    log_path: Path
    namespaces: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # more `bmfleet operator` flags, e.g. --metrics-bind
    proc: subprocess.Popen[bytes] | None = None

    liveness_port: int | None = None  # set by start(): kopf's liveness endpoint, up once the operator runs

    def start(self) -> OperatorProcess:
        require_loopback(self.kubeconfig)
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        (self.liveness_port,) = free_ports(1)
        args = [sys.executable, "-m", "bmfleet.cli.main", "operator", "--verbose"]
        args += [f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"]
        args += [f"--namespace={n}" for n in self.namespaces] + self.extra_args
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_live(self, timeout: float = 120) -> OperatorProcess:
        """Until kopf serves its liveness endpoint: startup done, watches starting (what a pod's probe sees).
        Benchmarks wait for this so that they time the pipeline, not the interpreter's imports."""

        def live() -> bool:
            if not self.alive:
                raise RuntimeError(f"the operator exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=5) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(live, timeout, "the operator's liveness endpoint", interval=0.05)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> int | None:
        """SIGINT (kopf's graceful stop), then SIGKILL if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def rss_kib(self) -> int | None:
        """Resident memory of the operator process, from /proc."""
        if self.proc is None:
            return None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
