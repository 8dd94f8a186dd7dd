"""`helm install` of the chart into the sandbox: the release is deployed, the operator Deployment's pod is admitted
in a namespace enforcing Pod Security `restricted`, and the operator the integration tests run is that
ServiceAccount (its token, not an admin's)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from kubernetes import client

from bmfleet.cli.devenv import OPERATOR_NAMESPACE, RELEASE, helm_binary, kubectl, wait_for
from bmfleet.sandbox.controlplane import Sandbox, find_repo_root


def test_release_is_deployed_and_its_pods_pass_restricted(sandbox: Sandbox, operator_kubeconfig: Path) -> None:
    helm = helm_binary(find_repo_root())
    status = subprocess.run(
        [str(helm), "status", RELEASE, "-n", OPERATOR_NAMESPACE, "--kubeconfig", str(sandbox.kubeconfig), "-o", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["info"]["status"] == "deployed"
    ns = json.loads(kubectl(sandbox, "get", "namespace", OPERATOR_NAMESPACE, "-o", "json"))
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    def operator_pod() -> bool:
        pods = json.loads(kubectl(sandbox, "get", "pods", "-n", OPERATOR_NAMESPACE, "-l",
                                  "app.kubernetes.io/component=operator", "-o", "json"))["items"]  # fmt: skip
        return any(p["status"].get("phase") == "Running" for p in pods)

    wait_for(operator_pod, 60, "the chart's operator pod to be admitted and running")


def test_the_tests_operator_runs_as_the_charts_service_account(sandbox: Sandbox, operator_kubeconfig: Path) -> None:
    kc = yaml.safe_load(operator_kubeconfig.read_text())
    token = kc["users"][0]["user"]["token"]
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = sandbox.api_url, str(sandbox.ca)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    user = review.status.user_info
    deployment = json.loads(kubectl(sandbox, "get", "deployments", "-n", OPERATOR_NAMESPACE, "-l",
                                    "app.kubernetes.io/component=operator", "-o", "json"))["items"][0]  # fmt: skip
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert user.username == f"system:serviceaccount:{OPERATOR_NAMESPACE}:{sa}"
    assert "system:masters" not in (user.groups or [])
