"""`bmfleet status | logs | report` against the sandbox, with the admin kubeconfig as a user would have it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bmfleet.cli.devenv import OperatorProcess, create_store_claim, wait_for
from bmfleet.cli.main import main
from tests.integration.conftest import Builds, executed_sample_with_missing_model, sample


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_shows_a_finished_build(
    builds: Builds, operator: OperatorProcess, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    builds.create(sample("shown"))
    builds.wait_condition("shown", "Compiled", "True", timeout=90)

    code, out, _ = run(capsys, "status", "-n", namespace)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("shown "))
    assert row.split()[:6] == ["shown", "Compiled", "True", "[##########]", "2/2", "-"]

    code, out, _ = run(capsys, "status", "-A")
    assert code == 0
    assert any(line.split()[:3] == [namespace, "shown", "Compiled"] for line in out.splitlines()), out


def test_logs_print_an_executed_pods_output(
    builds: Builds, operator: OperatorProcess, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = executed_sample_with_missing_model("logged")
    builds.create(body)
    builds.wait_condition("logged", "Stalled", "True", timeout=90)
    (pod,) = builds.pods("logged")

    def logged() -> tuple[int, str, str] | None:
        result = run(capsys, "logs", "logged", "-n", namespace, "--step", "compile", "--stage", "0")
        return result if result[0] == 0 else None

    _, out, err = wait_for(logged, 30, "the compile pod's log")
    assert "file:///nonexistent/ssd.prototxt: not found" in out
    assert err.strip() == f"==> pod {pod.metadata.name}"

    code, _, err = run(capsys, "logs", "logged", "-n", namespace, "--step", "gate")
    assert code == 1 and "no pods of build logged (gate)" in err


def test_report_finds_the_file_behind_a_pvc_uri(
    builds: Builds, operator: OperatorProcess, sandbox: Any, namespace: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    host = tmp_path / "store"
    create_store_claim(sandbox, namespace, "store", host)
    report = host / "models" / "blobs" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>gate report</html>")
    builds.create(sample("reported"))
    builds.wait_condition("reported", "Compiled", "True", timeout=90)

    code, _, err = run(capsys, "report", "reported", "-n", namespace)
    assert code == 1 and "no gate report yet" in err
    # What the gate step records (this build has no gates; a gate run needs a real toolchain): the operator's
    # later status writes are merge patches of the steps it runs, so they leave this field alone.
    gates = {"state": "Succeeded", "passed": True, "reportUri": "pvc://store/models/blobs/report.html"}
    builds.custom.patch_namespaced_custom_object_status(
        "bmfleet.io", "v1alpha1", namespace, "bmodelbuilds", "reported", {"status": {"gates": gates}}
    )
    code, out, _ = run(capsys, "report", "reported", "-n", namespace)
    assert code == 0 and out.strip() == str(report)
