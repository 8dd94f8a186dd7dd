"""Integration tier: a real control plane (etcd, kube-apiserver, KCM, scheduler, kwok) on loopback, the CRDs
as generated, and the operator as a separate process under the chart's ServiceAccount (never admin)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from bmfleet.cli.devenv import (
    OperatorProcess,
    create_namespace,
    install_crds,
    install_operator_identity,
    kubectl,
    wait_for,
)
from bmfleet.sandbox.controlplane import Sandbox, close_client, find_binaries, find_repo_root, start, stop
from bmfleet.sandbox.kubeconfig import require_loopback
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from bmfleet.sandbox.trained import TrainedModel, cached_models_dir, train_classifier, train_detector
from bmfleet.toolchains.tpu_mlir import find_bin_dir

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    state_dir = tmp_path_factory.mktemp("sandbox")
    sb = start(state_dir, find_binaries(find_repo_root()))
    # Anything that falls back to the default kubeconfig finds the sandbox, never a real cluster.
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(sb.kubeconfig)
    try:
        require_loopback(sb.kubeconfig)
        install_crds(sb)
        yield sb
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for log in (state_dir / "logs").glob("*.log"):
            (ARTIFACTS / f"sandbox-{log.name}").write_bytes(log.read_bytes()[-200_000:])
        stop(state_dir)
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def api(sandbox: Sandbox) -> Iterator[client.ApiClient]:
    """Admin client for the tests' own reads and writes (the operator has its own, narrower identity)."""
    c = sandbox.api_client()
    yield c
    close_client(c)


@pytest.fixture(scope="session")
def operator_kubeconfig(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_operator_identity(sandbox, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="session")
def operator(operator_kubeconfig: Path, sandbox: Sandbox) -> Iterator[OperatorProcess]:
    """One operator for the session, watching all namespaces, with its /metrics on a free loopback port
    (`metrics_url`). Tests may stop/kill and start it again."""
    ARTIFACTS.mkdir(exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    op = OperatorProcess(
        operator_kubeconfig, ARTIFACTS / "operator.log", extra_args=[f"--metrics-bind=127.0.0.1:{port}"]
    )
    op.start()
    yield op
    op.stop()


def metrics_url(op: OperatorProcess) -> str:
    """Where the session operator serves /metrics."""
    bind = next(a for a in op.extra_args if a.startswith("--metrics-bind="))
    return f"http://{bind.split('=', 1)[1]}/metrics"


def scrape(op: OperatorProcess) -> dict[str, float]:
    """Every sample of the operator's /metrics, by its full name with labels as exposed."""
    import urllib.request

    with urllib.request.urlopen(metrics_url(op), timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@pytest.fixture
def namespace(sandbox: Sandbox, api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, enforcing Pod Security `restricted`."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    create_namespace(sandbox, name)
    yield name
    client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


class Builds:
    """Small helpers over the admin client for BModelBuilds in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.custom.create_namespaced_custom_object(
            "bmfleet.io", "v1alpha1", self.namespace, "bmodelbuilds", body
        )
        return out

    def get(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "bmfleet.io", "v1alpha1", self.namespace, "bmodelbuilds", name
        )
        return out

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            "bmfleet.io", "v1alpha1", self.namespace, "bmodelbuilds", name, body
        )
        return out

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object("bmfleet.io", "v1alpha1", self.namespace, "bmodelbuilds", name)

    def jobs(self, build: str) -> list[client.V1Job]:
        items: list[client.V1Job] = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"bmfleet.io/build={build}"
        ).items
        return items

    def pods(self, build: str) -> list[client.V1Pod]:
        items: list[client.V1Pod] = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"bmfleet.io/build={build}"
        ).items
        return items

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        status = self.get(name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)

    def wait_condition(self, name: str, type_: str, status: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            body = self.get(name)
            st = body.get("status") or {}
            if st.get("observedGeneration") != body["metadata"]["generation"]:
                return None
            c = next((c for c in st.get("conditions") or [] if c["type"] == type_), None)
            return body if c is not None and c["status"] == status else None

        return wait_for(check, timeout, f"{name} {type_}={status}")

    def events(self, name: str) -> list[client.CoreV1Event]:
        items: list[client.CoreV1Event] = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=BModelBuild"
        ).items
        return items


@pytest.fixture
def builds(api: client.ApiClient, namespace: str) -> Builds:
    return Builds(api, namespace)


def sample(name: str = "ssd300", **spec_overrides: Any) -> dict[str, Any]:
    """The docs/examples sample with spec fields replaced."""
    root = find_repo_root()
    body: dict[str, Any] = yaml.safe_load((root / "docs" / "examples" / "bmodelbuild.yaml").read_text())
    body["metadata"] = {"name": name}
    body["spec"].update(spec_overrides)
    return body


def executed_sample_with_missing_model(name: str) -> dict[str, Any]:
    """One stage whose pod really runs (sandbox kubelet) and fails fast: its bmnetu model files do not exist."""
    body = sample(name)
    body["spec"]["shapes"] = [{"shape": "[1,3,300,300]"}]
    body["spec"]["compile"] = {"retries": 0}
    body["spec"]["placement"] = {"podAnnotations": {EXECUTE_ANNOTATION: "true"}}
    body["spec"]["model"] = {
        "format": "umodel",
        "uri": "file:///nonexistent/ssd.prototxt",
        "weightsUri": "file:///nonexistent/ssd.umodel",
    }
    return body


def kubectl_json(sandbox: Sandbox, *args: str) -> Any:
    return json.loads(kubectl(sandbox, *args, "-o", "json"))


@pytest.fixture(scope="session")
def classifier() -> TrainedModel:
    """The classifier trained on synthetic images (trained once, cached under $BMFLEET_CACHE)."""
    return train_classifier(cached_models_dir() / "classifier", find_bin_dir() / "python")


@pytest.fixture(scope="session")
def detector() -> TrainedModel:
    """The small YOLO-style detector trained on synthetic images (cached like the classifier)."""
    return train_detector(cached_models_dir() / "detector", find_bin_dir() / "python")
