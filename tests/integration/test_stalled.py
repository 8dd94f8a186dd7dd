"""What only the operator can detect: the build ends Stalled with a clear reason; the operator keeps going."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bmfleet.cli.devenv import OperatorProcess, wait_for
from tests.integration.conftest import Builds, sample

CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "duplicate stages": (
        {"shapes": [{"shape": "[4,3,300,300]"}, {"inputs": [[4, 3, 300, 300]]}]},
        "InvalidSpec",
        "spec.shapes[1]: [4,3,300,300] repeats spec.shapes[0]",
    ),
    "input count differs": (
        {"shapes": [{"shape": "[4,3,300,300]"}, {"shape": "[1,3,300,300],[1,10]"}]},
        "InvalidSpec",
        "spec.shapes[1]: has 2 input shape(s) but spec.shapes[0] has 1",
    ),
    "string batch above maxN": (
        {"shapes": [{"shape": "[8,3,300,300]"}], "compile": {"maxN": 4}},
        "InvalidSpec",
        "spec.shapes[0]: batch 8 exceeds compile.maxN 4",
    ),
    "gates without a store or an FP32 reference": (
        {"gates": {"similarity": {"samples": 4}}},
        "InvalidSpec",
        "spec.gates: gates run on the combined bmodel: set spec.output.store; spec.gates: the FP32 reference runs",
    ),
    "missing input claim": (
        {"model": {"format": "umodel", "uri": "pvc://models/ssd.prototxt", "weightsUri": "pvc://models/ssd.umodel"}},
        "InputNotFound",
        "spec.model.uri: PersistentVolumeClaim 'models' not found",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_only_problems_stall_with_reason(builds: Builds, operator: OperatorProcess, case: str) -> None:
    overrides, reason, message = CASES[case]
    body = sample("s")
    body["spec"].update(copy.deepcopy(overrides))
    builds.create(body)
    done = builds.wait_condition("s", "Stalled", "True", timeout=30)
    cond = next(c for c in done["status"]["conditions"] if c["type"] == "Stalled")
    assert cond["reason"] == reason and message in cond["message"], cond
    ready = next(c for c in done["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and done["status"]["phase"] == "Stalled"
    assert builds.jobs("s") == []
    assert operator.alive


def test_fixing_the_spec_clears_stalled(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("fixme")
    body["spec"]["shapes"] = [{"shape": "[4,3,300,300]"}, {"shape": "[4,3,300,300]"}]
    builds.create(body)
    builds.wait_condition("fixme", "Stalled", "True", timeout=30)
    builds.patch("fixme", {"spec": {"shapes": [{"shape": "[4,3,300,300]"}, {"shape": "[1,3,300,300]"}]}})
    done = builds.wait_condition("fixme", "Compiled", "True", timeout=90)
    assert next(c for c in done["status"]["conditions"] if c["type"] == "Stalled")["status"] == "False"
    assert len(builds.jobs("fixme")) == 2


def test_missing_claim_recovers_when_it_appears(builds: Builds, operator: OperatorProcess) -> None:
    body = sample("claim")
    body["spec"]["model"] = {
        "format": "umodel",
        "uri": "pvc://late/ssd.prototxt",
        "weightsUri": "pvc://late/ssd.umodel",
    }
    builds.create(body)
    builds.wait_condition("claim", "Stalled", "True", timeout=30)
    builds.core.create_namespaced_persistent_volume_claim(
        builds.namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "late"},
            "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    # The operator retries InputNotFound on its own (no spec change needed).
    wait_for(lambda: len(builds.jobs("claim")) == 2, 60, "Jobs once the claim exists")
    job = builds.jobs("claim")[0]
    vols = {v.persistent_volume_claim.claim_name for v in job.spec.template.spec.volumes if v.persistent_volume_claim}
    assert vols == {"late"}
