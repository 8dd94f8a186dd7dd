"""Builds whose `spec.output.store` is a real OCI registry (`crane registry serve`) or a real S3 server
(versitygw) on loopback: the compile Job puts its stage there, combine fetches it by digest and puts the combined
bmodel back, the status names the blobs by digest, and a second build with the same inputs creates no Job at all
(the compile cache hits on the registry's blobs). The S3 build takes its keys from a Secret the sandbox kubelet
mounts, is gated (report and result into the bucket) and published from the bucket to the registry.
One small shape, digests declared (no resolve step): as fast as a real TPU-MLIR build gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bmfleet.api.digests import sha256_file, sha256_tree
from bmfleet.cli.devenv import OperatorProcess
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.models import write_calibration_dir, write_classifier
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from bmfleet.store.oci import OciStore
from bmfleet.store.s3 import S3Store
from tests.integration.conftest import Builds
from tests.store.conftest import own_crane, versitygw_server
from tests.store.servers import BUILD_HINT, S3_ACCESS, S3_BUCKET, S3_SECRET, Server, find_tools

pytestmark = pytest.mark.toolchain


@pytest.fixture
def tools() -> Path:
    tools = find_tools()
    if tools is None or not all((tools / t).is_file() for t in ("crane", "versitygw")):
        pytest.skip(f"crane / versitygw not built: {BUILD_HINT}")
    return tools


@pytest.fixture
def registry(tools: Path, tmp_path: Path) -> Iterator[Server]:
    with own_crane(tmp_path / "registry") as (server, _):
        yield server


@pytest.fixture
def bucket(tools: Path, tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "s3").mkdir()
    server, _ = versitygw_server(tools, tmp_path / "s3")
    server.start()
    yield server
    server.stop()


def _build(name: str, tmp_path: Path, store: dict[str, str], **extra: Any) -> dict[str, Any]:
    model, calib = tmp_path / "tiny.onnx", tmp_path / "calib"
    if not model.exists():
        write_classifier(model)
        write_calibration_dir(calib)
    return {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": name},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{model}", "sha256": sha256_file(model)},
            "chip": "BM1684",
            "precision": "INT8",
            "netName": "tiny",
            "shapes": [{"shape": "[1,3,32,32]"}],
            "calibration": {"datasetUri": f"file://{calib}", "samples": 8, "sha256": sha256_tree(calib)},
            "output": {"store": store},
            "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
            **extra,
        },
    }


def _steps(builds: Builds, name: str) -> list[str]:
    return sorted(j.metadata.labels["bmfleet.io/step"] for j in builds.jobs(name))


@pytest.mark.timeout(900)
def test_oci_store_holds_the_blobs_and_serves_the_cache(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path, registry: Server
) -> None:
    repo = "bmfleet/artifacts"
    store_uri = f"oci://127.0.0.1:{registry.port}/{repo}"
    builds.create(_build("tiny-oci", tmp_path, {"type": "oci", "uri": store_uri}))
    done = builds.wait_condition("tiny-oci", "Combined", "True", timeout=600)
    st = done["status"]
    (stage,) = st["shapes"]
    assert stage["uri"] == f"{store_uri}@{stage['digest']}" and not stage.get("cacheHit")
    combined = st["combine"]
    assert combined["uri"] == f"{store_uri}@{combined['digest']}" and combined["stages"] == 1
    oci = OciStore(f"127.0.0.1:{registry.port}", repo)
    fetched = oci.fetch(combined["digest"], tmp_path / "combined.bmodel")  # verified against the digest
    assert f"sha256:{sha256_file(fetched)}" == combined["digest"] and fetched.stat().st_size == combined["size"]
    assert _steps(builds, "tiny-oci") == ["combine", "compile"]

    builds.create(_build("tiny-oci-again", tmp_path, {"type": "oci", "uri": store_uri}))
    again = builds.wait_condition("tiny-oci-again", "Combined", "True", timeout=60)["status"]
    assert _steps(builds, "tiny-oci-again") == []  # no compile Job, no combine Job
    assert again["shapes"][0]["cacheHit"] is True and again["shapes"][0]["uri"] == stage["uri"]
    assert again["combine"]["cacheHit"] is True and again["combine"]["digest"] == combined["digest"]


@pytest.mark.timeout(900)
def test_s3_store_with_a_secret_gates_and_publishes(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path,
    registry: Server, bucket: Server, api: client.ApiClient,
) -> None:  # fmt: skip
    endpoint = f"http://127.0.0.1:{bucket.port}"
    keys = {"AWS_ACCESS_KEY_ID": S3_ACCESS, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s3-creds"), string_data=keys)
    client.CoreV1Api(api).create_namespaced_secret(namespace, secret)
    store_uri = f"s3://{S3_BUCKET}/builds?endpoint={endpoint}"
    store = {"type": "s3", "uri": store_uri, "credentialsSecret": "s3-creds"}
    gates = {"similarity": {"samples": 4, "minCosine": 0.5}}
    publish = {"registry": {"uri": f"oci://127.0.0.1:{registry.port}/models/tiny"}}
    builds.create(_build("tiny-s3", tmp_path, store, gates=gates, publish=publish))
    done = builds.wait_condition("tiny-s3", "Published", "True", timeout=600)
    st = done["status"]
    combined = st["combine"]
    hexdigest = combined["digest"].removeprefix("sha256:")
    assert combined["uri"] == f"s3://{S3_BUCKET}/builds/blobs/sha256/{hexdigest}?endpoint={endpoint}"
    s3 = S3Store(S3_BUCKET, "builds", endpoint=endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET)
    assert sha256_file(s3.fetch(hexdigest, tmp_path / "combined.bmodel")) == hexdigest
    result_uri, report_uri = st["gates"]["resultUri"], st["gates"]["reportUri"]
    assert result_uri.startswith(f"s3://{S3_BUCKET}/builds/blobs/sha256/") and st["gates"]["passed"] is True
    result_digest = result_uri.partition("?")[0].rpartition("/")[2]
    assert json.loads(s3.fetch(result_digest, tmp_path / "result.json").read_text())["passed"] is True
    assert "<html" in s3.fetch(report_uri.partition("?")[0].rpartition("/")[2], tmp_path / "r.html").read_text()
    assert st["publish"]["uri"].endswith(f"@{combined['digest']}")
    # The keys reached the steps through the Secret volume only: never the Job args or the status.
    for job in builds.jobs("tiny-s3"):
        assert S3_SECRET not in json.dumps(job.to_dict(), default=str)
    assert S3_SECRET not in json.dumps(st) and S3_ACCESS not in json.dumps(st)
