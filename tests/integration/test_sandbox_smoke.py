"""Start the real sandbox in a temp dir and check what the rest of bmfleet relies on.

Skipped until hack/build-control-plane.sh has finished (its .complete stamp exists); run with ``-s`` to see
the measured start time and component RSS.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from bmfleet.sandbox import cli, controlplane
from bmfleet.sandbox import state as state_mod
from bmfleet.sandbox.controlplane import Sandbox, api_client_for
from bmfleet.sandbox.kubeconfig import require_loopback
from bmfleet.sandbox.stages import HOLD_ANNOTATION, OUTCOME_ANNOTATION

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
NODE_NAMES = {"bm1684-0", "bm1684-1", "bm1684x-0", "cpu-0"}


def _built_bin_dir() -> Path:
    cache = Path(os.environ.get("BMFLEET_CACHE", REPO / ".cache"))
    if not any(cache.glob("controlplane-*/bin/.complete")):
        pytest.skip("control-plane binaries not built yet (hack/build-control-plane.sh)")
    return controlplane.find_binaries(REPO)  # a no-op once the stamp exists


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    bin_dir = _built_bin_dir()
    state_dir = tmp_path_factory.mktemp("sandbox")
    began = time.monotonic()
    sb = controlplane.start(state_dir, bin_dir)
    elapsed = time.monotonic() - began
    recorded = state_mod.load(state_dir)
    assert recorded is not None
    print(f"\nsandbox start() -> nodes Ready: {elapsed:.1f}s; phases: {recorded.timings}")
    try:
        require_loopback(sb.kubeconfig)
        yield sb
    finally:
        pids = [c.pid for c in recorded.components]
        controlplane.stop(state_dir)
        assert state_mod.load(state_dir) is None
        assert not any(Path(f"/proc/{pid}").exists() and _cmd(pid).startswith(str(bin_dir)) for pid in pids)
        assert not Path(recorded.etcd_data_dir).exists()


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def api(sandbox: Sandbox) -> Iterator[client.ApiClient]:
    with sandbox.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    _wait(lambda: bool(core.list_namespaced_service_account(name, field_selector="metadata.name=default").items))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def _wait(check: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _job(
    name: str, annotations: dict[str, str] | None = None, node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    resources = {"sophgo.com/tpu": "1", "cpu": "100m", "memory": "64Mi"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": node_selector or {"sophgo.com/chip": "bm1684"},
                    "containers": [
                        {
                            "name": "work",
                            "image": "registry.invalid/bmfleet/noop:1",
                            "resources": {"requests": resources, "limits": resources},
                        }
                    ],
                },
            },
        },
    }


def _job_condition(api: client.ApiClient, namespace: str, name: str) -> str | None:
    job = client.BatchV1Api(api).read_namespaced_job_status(name, namespace)
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def _job_pods(api: client.ApiClient, namespace: str, name: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={name}")
    return list(pods.items)


def test_version(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version == "v1.36.3"


def test_nodes_ready_with_tpus(api: client.ApiClient) -> None:
    nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
    assert set(nodes) == NODE_NAMES
    for name, node in nodes.items():
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", name
        assert not node.spec.taints, name
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        assert node.metadata.labels["type"] == "kwok"
        assert node.metadata.labels["kubernetes.io/hostname"] == name
    for name, chip in (("bm1684-0", "bm1684"), ("bm1684-1", "bm1684"), ("bm1684x-0", "bm1684x")):
        assert nodes[name].metadata.labels["sophgo.com/chip"] == chip
        assert nodes[name].status.allocatable["sophgo.com/tpu"] == "4"
        assert nodes[name].status.capacity["cpu"] == "8"
    assert "sophgo.com/chip" not in nodes["cpu-0"].metadata.labels
    assert "sophgo.com/tpu" not in nodes["cpu-0"].status.allocatable


def test_tpu_job_completes_on_a_bm1684(api: client.ApiClient, namespace: str) -> None:
    client.BatchV1Api(api).create_namespaced_job(namespace, _job("compile"))
    assert _wait(lambda: _job_condition(api, namespace, "compile"), what="job to finish") == "Complete"
    pods = _job_pods(api, namespace, "compile")
    assert len(pods) == 1
    assert pods[0].spec.node_name in {"bm1684-0", "bm1684-1"}
    assert pods[0].status.phase == "Succeeded"


def test_outcome_fail_fails_the_job(api: client.ApiClient, namespace: str) -> None:
    client.BatchV1Api(api).create_namespaced_job(namespace, _job("doomed", {OUTCOME_ANNOTATION: "fail"}))
    assert _wait(lambda: _job_condition(api, namespace, "doomed"), what="job to finish") == "Failed"
    (pod,) = _job_pods(api, namespace, "doomed")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (1, "Error", "simulated failure")


def test_hold_keeps_the_pod_running_until_released(api: client.ApiClient, namespace: str) -> None:
    client.BatchV1Api(api).create_namespaced_job(namespace, _job("held", {HOLD_ANNOTATION: "true"}))
    core = client.CoreV1Api(api)
    pod = _wait(
        lambda: next((p for p in _job_pods(api, namespace, "held") if p.status.phase == "Running"), None),
        what="held pod to run",
    )
    time.sleep(3)
    assert core.read_namespaced_pod(pod.metadata.name, namespace).status.phase == "Running"
    assert _job_condition(api, namespace, "held") is None
    annotation_path = HOLD_ANNOTATION.replace("/", "~1")
    core.patch_namespaced_pod(
        pod.metadata.name, namespace, [{"op": "remove", "path": f"/metadata/annotations/{annotation_path}"}]
    )
    assert _wait(lambda: _job_condition(api, namespace, "held"), what="released job") == "Complete"


def test_token_kubeconfig_without_rbac_is_forbidden(
    sandbox: Sandbox, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    path = controlplane.token_kubeconfig(sandbox, namespace, "nobody", tmp_path / "nobody.kubeconfig", 600)
    require_loopback(path)
    with api_client_for(path) as sa_api:
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(sa_api).list_namespaced_pod(namespace)
        assert err.value.status == 403


def test_status_and_cli_see_the_running_sandbox(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    st = controlplane.status(sandbox.state_dir)
    assert st.running and st.api_ok
    rss = {c.name: c.rss_kib for c in st.components}
    with capsys.disabled():
        print("\nRSS MiB: " + ", ".join(f"{k}={(v or 0) / 1024:.0f}" for k, v in rss.items()))
        print(f"total RSS: {sum(v or 0 for v in rss.values()) / 1024:.0f} MiB")

    parser = argparse.ArgumentParser(prog="bmfleet")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    for argv in (["sandbox", "up"], ["sandbox", "kubeconfig"]):
        args = parser.parse_args([*argv, "--state-dir", str(sandbox.state_dir)])
        assert args.func(args) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == str(sandbox.kubeconfig)
    assert sandbox.kubectl.is_file()
