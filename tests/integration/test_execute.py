"""Jobs that really run: the sandbox kubelet executes the compile pod's own command and environment as a local
process, and the worker's result record comes back through the pod's termination message into the status."""

from __future__ import annotations

from bmfleet.cli.devenv import OperatorProcess
from tests.integration.conftest import Builds, executed_sample_with_missing_model


def test_compile_pod_runs_its_command_and_reports_back(builds: Builds, operator: OperatorProcess) -> None:
    body = executed_sample_with_missing_model("real")
    builds.create(body)
    done = builds.wait_condition("real", "Stalled", "True", timeout=90)

    (pod,) = builds.pods("real")
    (cs,) = pod.status.container_statuses
    # The process really ran: the worker looked for its input and wrote its result record.
    assert cs.state.terminated.exit_code == 2
    assert '"reason":"BadInput"' in cs.state.terminated.message
    assert pod.spec.node_name in {"bm1684-0", "bm1684-1"}
    (stage,) = done["status"]["shapes"]
    assert stage["state"] == "Failed" and stage["reason"] == "BadInput"
    assert "file:///nonexistent/ssd.prototxt: not found" in stage["message"]
