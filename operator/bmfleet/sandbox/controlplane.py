"""Start and stop the sandbox: etcd, kube-apiserver, KCM, kube-scheduler and kwok on loopback.

Processes run in their own sessions so ``bmfleet sandbox up`` can return and leave them running; everything
needed to find and stop them again is in ``<state_dir>/state.json`` (see :mod:`bmfleet.sandbox.state`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from bmfleet.sandbox import components, launch, probes, procs
from bmfleet.sandbox import state as state_mod
from bmfleet.sandbox.kubeconfig import require_loopback, write_cert_kubeconfig, write_token_kubeconfig
from bmfleet.sandbox.nodes import FLEET, NodeSpec, create_nodes, wait_nodes_ready
from bmfleet.sandbox.pki import Pki, make_pki
from bmfleet.sandbox.stages import write_kwok_config
from bmfleet.sandbox.state import State

log = logging.getLogger(__name__)

BUILD_SCRIPT = Path("hack/build-control-plane.sh")
NODES_TIMEOUT = 120.0
LOCK_FILE = "lock"


class SandboxError(RuntimeError):
    """The sandbox could not be started or used."""


class AlreadyRunningError(SandboxError):
    """start() found a healthy sandbox recorded in the state dir."""


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox; ``kubeconfig`` is the admin (system:masters) kubeconfig."""

    state_dir: Path
    kubeconfig: Path
    api_url: str
    ca: Path
    bin_dir: Path

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    def api_client(self) -> client.ApiClient:
        """An admin ApiClient built from this kubeconfig only (never the global default config)."""
        return api_client_for(self.kubeconfig)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    alive: bool
    rss_kib: int | None


@dataclass(frozen=True)
class Status:
    running: bool
    api_ok: bool
    components: list[ComponentStatus]
    sandbox: Sandbox | None


def api_client_for(kubeconfig: Path) -> client.ApiClient:
    """ApiClient for a loopback kubeconfig, bypassing any HTTP(S)_PROXY from the environment."""
    require_loopback(kubeconfig)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg, persist_config=False)
    setattr(cfg, "proxy", None)  # noqa: B010 - the stubs lack Configuration.proxy
    return client.ApiClient(cfg)


def close_client(api: client.ApiClient) -> None:
    """Release the client's connection pool (``close`` exists at runtime but not in the stubs)."""
    close: Callable[[], None] | None = getattr(api, "close", None)
    if close is not None:
        close()


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory above ``start`` (default: this file) holding hack/build-control-plane.sh."""
    here = (start or Path(__file__)).resolve()
    for candidate in [here, *here.parents]:
        if (candidate / BUILD_SCRIPT).is_file():
            return candidate
    raise SandboxError(f"no {BUILD_SCRIPT} found above {here}")


def find_binaries(repo_root: Path) -> Path:
    """Run the build script (a no-op once cached) and return its bin dir (its last stdout line)."""
    proc = subprocess.run(
        ["bash", str(repo_root / BUILD_SCRIPT)], cwd=repo_root, stdout=subprocess.PIPE, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise SandboxError(f"{BUILD_SCRIPT} failed (exit {proc.returncode})")
    bin_dir = Path(lines[-1].strip())
    if not (bin_dir / "kube-apiserver").is_file():
        raise SandboxError(f"{BUILD_SCRIPT} printed {bin_dir}, which holds no kube-apiserver")
    return bin_dir


def start(state_dir: Path, bin_dir: Path, nodes: tuple[NodeSpec, ...] = FLEET) -> Sandbox:
    """Start all components, create the simulated nodes and wait until they are schedulable.

    On any failure everything started so far is stopped again and the error carries the log tail.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        if is_running(state_dir):
            raise AlreadyRunningError(f"a sandbox is already running from {state_dir}")
        _stop(state_dir)  # leftovers of a crashed run, if any
        return _start(state_dir, bin_dir.resolve(), nodes)


def _start(state_dir: Path, bin_dir: Path, nodes: tuple[NodeSpec, ...]) -> Sandbox:
    began = time.monotonic()
    ports = components.Ports(*procs.free_ports(7))
    pki = make_pki(state_dir / "pki")
    api_url = f"https://127.0.0.1:{ports.apiserver}"
    kubeconfig = write_cert_kubeconfig(
        state_dir / "admin.kubeconfig",
        api_url,
        pki.ca_cert.read_bytes(),
        pki.admin_cert.read_bytes(),
        pki.admin_key.read_bytes(),
    )
    write_kwok_config(bin_dir.parent / "kwok-stages", state_dir / launch.KWOK_CONFIG)
    st = State(
        bin_dir=str(bin_dir),
        kubeconfig=str(kubeconfig),
        api_url=api_url,
        ca=str(pki.ca_cert),
        etcd_data_dir=str(launch.etcd_data_dir(state_dir)),
        ports={k: int(v) for k, v in vars(ports).items()},
    )
    st.save(state_dir)
    sandbox = Sandbox(state_dir, kubeconfig, api_url, pki.ca_cert, bin_dir)
    try:
        launch.start_components(st, state_dir, pki)
        t = time.monotonic()
        api = sandbox.api_client()
        try:
            create_nodes(api, nodes)
            wait_nodes_ready(api, [n.name for n in nodes], NODES_TIMEOUT)
        finally:
            close_client(api)
        st.timings["nodes"] = round(time.monotonic() - t, 2)
        st.timings["total"] = round(time.monotonic() - began, 2)
        st.save(state_dir)
    except BaseException:
        _stop(state_dir)
        raise
    log.info("sandbox up in %.1fs (%s)", st.timings["total"], st.timings)
    return sandbox


def stop(state_dir: Path) -> None:
    """Stop the recorded processes in reverse start order, then remove the etcd data."""
    state_dir = state_dir.resolve()
    if not (state_dir / state_mod.STATE_FILE).exists():
        return
    with _locked(state_dir):
        _stop(state_dir)


def _stop(state_dir: Path) -> None:
    st = state_mod.load(state_dir)
    if st is None:
        return
    errors = []
    for component in reversed(st.components):
        try:
            procs.terminate(component)
        except procs.ComponentError as e:
            errors.append(str(e))
    launch.remove_etcd_data(state_dir, Path(st.etcd_data_dir))
    if errors:
        raise SandboxError("; ".join(errors))
    state_mod.remove(state_dir)


def status(state_dir: Path) -> Status:
    """Liveness of each recorded process and whether the apiserver answers /readyz."""
    state_dir = state_dir.resolve()
    st = state_mod.load(state_dir)
    if st is None:
        return Status(running=False, api_ok=False, components=[], sandbox=None)
    comps = []
    for c in st.components:
        alive = procs.is_alive(c)
        comps.append(ComponentStatus(c.name, c.pid, alive, procs.rss_kib(c.pid) if alive else None))
    api_ok = any(c.alive for c in comps) and _api_ready(st)
    sandbox = Sandbox(state_dir, Path(st.kubeconfig), st.api_url, Path(st.ca), Path(st.bin_dir))
    running = api_ok and len(comps) == len(launch.ORDER) and all(c.alive for c in comps)
    return Status(running=running, api_ok=api_ok, components=comps, sandbox=sandbox)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise start/stop on one state dir (several sessions may run ``sandbox up`` at once)."""
    with (state_dir / LOCK_FILE).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _api_ready(st: State) -> bool:
    pki = Pki(Path(st.ca).parent)
    try:
        tls = probes.tls_context(pki.ca_cert, pki.admin_cert, pki.admin_key)
    except (OSError, ssl.SSLError):
        return False
    return probes.ok(f"{st.api_url}/readyz", tls)


def is_running(state_dir: Path) -> bool:
    return status(state_dir).running


def load_sandbox(state_dir: Path) -> Sandbox | None:
    """The running sandbox recorded in ``state_dir``, or None."""
    st = status(state_dir)
    return st.sandbox if st.running else None


def token_kubeconfig(
    sandbox: Sandbox, namespace: str, service_account: str, path: Path, expiration_seconds: int = 3600
) -> Path:
    """Kubeconfig for a ServiceAccount, with a bearer token from the TokenRequest API (admin-issued)."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(expiration_seconds=expiration_seconds))
    api = sandbox.api_client()
    try:
        resp = client.CoreV1Api(api).create_namespaced_service_account_token(service_account, namespace, request)
    finally:
        close_client(api)
    token = resp.status.token if resp.status else None
    if not token:
        raise SandboxError(f"TokenRequest for {namespace}/{service_account} returned no token")
    user = f"system:serviceaccount:{namespace}:{service_account}"
    return write_token_kubeconfig(path, sandbox.api_url, sandbox.ca.read_bytes(), token, user)
