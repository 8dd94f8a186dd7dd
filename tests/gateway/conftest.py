"""Gateway tier: the real gateway (in-process, on its own event loop) against the real sandbox API server, under
the chart's gateway identity, with REAL device agents (agent/bmfleet_agent, stdlib only) talking HTTPS to it."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bmfleet.cli.devenv import create_namespace
from bmfleet.gateway.config import GatewayConfig
from bmfleet.gateway.runner import BackgroundGateway, api_client
from bmfleet.sandbox.controlplane import Sandbox, close_client
from tests.conftest import ROOT
from tests.gateway.support import Devices, create_bootstrap_secret, ensure_edgedevice_crd, install_gateway_identity
from tests.gateway.support import make_tls as _make_tls
from tests.integration.conftest import api, sandbox  # noqa: F401 - the session's sandbox and admin client

sys.path.insert(0, str(ROOT / "agent"))

from bmfleet_agent.agent import Agent
from bmfleet_agent.config import Config

BOOTSTRAP = "bootstrap-" + uuid.uuid4().hex


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/gateway/" in str(item.fspath) and "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def gw_namespace(sandbox: Sandbox, api: client.ApiClient) -> Iterator[str]:  # noqa: F811
    name = f"gw-{uuid.uuid4().hex[:8]}"
    create_namespace(sandbox, name)
    ensure_edgedevice_crd(sandbox)
    create_bootstrap_secret(api, name, BOOTSTRAP)
    yield name
    client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def gateway(
    sandbox: Sandbox,  # noqa: F811
    gw_namespace: str,
    tls: tuple[Path, Path, Path],
    store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackgroundGateway]:
    kubeconfig = install_gateway_identity(sandbox, gw_namespace, tmp_path_factory.mktemp("gw-identity"))
    cfg = GatewayConfig(
        namespace=gw_namespace, bootstrap_secret="bmfleet-bootstrap", listen=("127.0.0.1", 0),
        admin_listen=("127.0.0.1", 0), tls_cert=tls[1], tls_key=tls[2], store_uris=[f"file://{store}"],
        cache_dir=tmp_path_factory.mktemp("gw-cache"), kubeconfig=kubeconfig, batch_interval=0.2,
        rotation_grace=3600,
    )  # fmt: skip
    api_ = api_client(kubeconfig)
    gw = BackgroundGateway(cfg, api_).start()
    yield gw
    gw.stop()
    close_client(api_)


@pytest.fixture
def devices(api: client.ApiClient, gw_namespace: str) -> Devices:  # noqa: F811
    return Devices(api, gw_namespace)


@pytest.fixture
def make_agent(tmp_path: Path, gateway: BackgroundGateway, tls: tuple[Path, Path, Path]) -> Callable[..., Agent]:
    """A real agent for `device` (same `device` again = the same box restarting: same state dir)."""

    def make(device: str, transport: Any = None, **overrides: Any) -> Agent:
        settings: dict[str, Any] = dict(
            gateway=gateway.url, state_dir=str(tmp_path / device), chip="BM1684", bootstrap_token=BOOTSTRAP,
            device_id=device, ca_bundle=str(tls[0]), poll_wait=0, sdk_version="0.4.9-test", request_timeout=10,
        )  # fmt: skip
        settings.update(overrides)
        return Agent(Config(**settings).validate(), transport=transport, log=logging.getLogger(f"agent.{device}"))

    return make
