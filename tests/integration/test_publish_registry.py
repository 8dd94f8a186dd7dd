"""spec.publish.registry on the sandbox: a real build, once Ready, is pushed to a real OCI registry (`crane
registry serve`) as one ORAS-compatible artifact — `oras pull` gets the bmodel (its digest is the combined one)
and the provenance record — and Published=True names the blob devices will fetch."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmfleet.api.digests import sha256_file
from bmfleet.cli.devenv import OperatorProcess, create_store_claim
from bmfleet.sandbox.controlplane import Sandbox
from bmfleet.sandbox.models import write_calibration_dir, write_classifier
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION
from tests.integration.conftest import Builds
from tests.store.conftest import own_crane
from tests.store.servers import Server

pytestmark = pytest.mark.toolchain


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    with own_crane(tmp_path / "registry") as running:
        yield running


@pytest.mark.timeout(900)
def test_a_ready_build_is_pushed_as_one_artifact(
    builds: Builds, operator: OperatorProcess, sandbox: Sandbox, namespace: str, tmp_path: Path,
    registry: tuple[Server, Path],
) -> None:  # fmt: skip
    server, tools = registry
    model = write_classifier(tmp_path / "tiny.onnx")
    calib = write_calibration_dir(tmp_path / "calib")
    store = tmp_path / "store"
    create_store_claim(sandbox, namespace, "artifacts", store)
    repo = f"127.0.0.1:{server.port}/models/tiny"
    body = {
        "apiVersion": "bmfleet.io/v1alpha1",
        "kind": "BModelBuild",
        "metadata": {"name": "pushed"},
        "spec": {
            "toolchain": {"name": "tpu-mlir"},
            "model": {"format": "onnx", "uri": f"file://{model}"},
            "chip": "BM1684",
            "precision": "INT8",
            "netName": "tiny",
            "shapes": [{"shape": "[1,3,32,32]"}],
            "calibration": {"datasetUri": f"file://{calib}", "samples": 8},
            "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
            "placement": {"podAnnotations": {EXECUTE_ANNOTATION: "true"}},
            "publish": {"registry": {"uri": f"oci://{repo}", "tag": "v1"}},
        },
    }
    builds.create(body)
    done = builds.wait_condition("pushed", "Published", "True", timeout=600)
    st = done["status"]
    manifest, blob_uri = st["publish"]["manifest"], st["publish"]["uri"]
    assert blob_uri == f"oci://{repo}@{st['combine']['digest']}"

    oras = tools / "oras"
    out = tmp_path / "pulled"
    subprocess.run([str(oras), "pull", "--plain-http", "-o", str(out), f"{repo}@{manifest}"], check=True,
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "sha256:" + sha256_file(out / "model.bmodel") == st["combine"]["digest"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inputs"] == st["inputs"]["digests"] and prov["chip"] == "BM1684"
    fetched = subprocess.run([str(oras), "manifest", "fetch", "--plain-http", f"{repo}:v1"], check=True,
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    assert json.loads(fetched)["artifactType"] == "application/vnd.bmfleet.bmodel.v1"
