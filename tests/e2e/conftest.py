"""End-to-end tier: the whole fleet path as separate processes on loopback. The sandbox control plane and the
operator (as the chart's ServiceAccount) from the integration tier; a real `crane registry serve`; `bmfleet gateway`
as the chart's gateway ServiceAccount; real agent processes. Builds are real TPU-MLIR compiles.

All e2e tests share one namespace and one PVC store, so the compile cache (keyed per namespace and store) makes
every build of the same model after the first a cache hit. Each test labels its own devices `e2e=<test>` and
selects on that too, so one test's (completed) rollout never reaches another test's devices."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from bmfleet.api.digests import sha256_file, sha256_tree
from bmfleet.cli.devenv import create_namespace, create_store_claim
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.models import write_calibration_dir, write_classifier
from tests.e2e.recording import Recorder
from tests.e2e.support import Fleet, GatewayProcess, Inputs
from tests.gateway.support import create_bootstrap_secret, ensure_edgedevice_crd, install_gateway_identity, make_tls
from tests.integration.conftest import (  # noqa: F401 - the session's fixtures, for this tier too
    Builds,
    api,
    operator,
    operator_kubeconfig,
    sandbox,
)
from tests.store.conftest import own_crane
from tests.store.servers import Server

BOOTSTRAP = "bootstrap-" + uuid.uuid4().hex


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Env:
    namespace: str
    store: Path
    gateway_kubeconfig: Path
    tls: tuple[Path, Path, Path]
    inputs: Inputs


@pytest.fixture(scope="session")
def e2e(sandbox: Sandbox, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: F811
    """The shared namespace: bootstrap Secret, PVC store, the gateway's identity, the inputs of every release."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(sandbox, name)
    ensure_edgedevice_crd(sandbox)
    create_bootstrap_secret(api, name, BOOTSTRAP)
    store = tmp_path_factory.mktemp("e2e-store")
    create_store_claim(sandbox, name, "artifacts", store)
    kubeconfig = install_gateway_identity(sandbox, name, tmp_path_factory.mktemp("e2e-gw-identity"))
    data = tmp_path_factory.mktemp("e2e-inputs")
    models = {seed: write_classifier(data / f"tiny-{seed}.onnx", seed=seed) for seed in (0, 1)}
    calib = write_calibration_dir(data / "calib")
    inputs = Inputs({s: (p, sha256_file(p)) for s, p in models.items()}, (calib, sha256_tree(calib)))
    yield Env(name, store, kubeconfig, make_tls(tmp_path_factory.mktemp("e2e-tls")), inputs)
    client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def builds(api: client.ApiClient, e2e: Env) -> Builds:  # noqa: F811
    return Builds(api, e2e.namespace)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Server]:
    """A registry of the test's own (it may stop and restart it: blobs survive on disk, on the same port)."""
    with own_crane(tmp_path / "registry") as (server, _):
        yield server


@pytest.fixture
def gateway(e2e: Env, registry: Server, tmp_path: Path) -> Iterator[GatewayProcess]:
    """`bmfleet gateway` for the namespace, serving blobs from the test's registry (and caching them)."""
    work = tmp_path / "gateway"
    work.mkdir()
    gw = GatewayProcess(e2e.namespace, e2e.gateway_kubeconfig, e2e.tls, f"oci://127.0.0.1:{registry.port}/models", work)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def fleet(e2e: Env, gateway: GatewayProcess, tmp_path: Path) -> Iterator[Fleet]:
    """Agent processes, stopped at the end of the test (before the gateway)."""
    work = tmp_path / "agents"
    work.mkdir()
    agents = Fleet(gateway, e2e.tls[0], BOOTSTRAP, work)
    yield agents
    agents.stop()


@pytest.fixture
def record(sandbox: Sandbox, e2e: Env) -> Iterator[Callable[..., Recorder]]:  # noqa: F811
    """Start watch recorders in the e2e namespace; all are stopped at the end of the test."""
    started: list[Recorder] = []

    def start(plural: str, on_event: Callable[..., None], label_selector: str = "") -> Recorder:
        rec = Recorder(sandbox, e2e.namespace, plural, on_event, label_selector).begin()
        started.append(rec)
        return rec

    yield start
    for rec in started:
        rec.stop()
