"""The command line and the many-agents-in-one-process simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bmfleet_agent import sim
from bmodels import digest, make_bmodel

AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args: str):
    env = dict(os.environ, PYTHONPATH=AGENT_DIR)
    argv = [sys.executable, "-m", "bmfleet_agent", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def test_cli_once_then_status(gateway, tmp_path, v1) -> None:
    state = str(tmp_path / "s")
    token = tmp_path / "token"
    token.write_text("boot-secret")
    gateway.set_desired("cli-1", [gateway.model("det", v1)])
    args = ["--gateway", gateway.url, "--state-dir", state, "--chip", "BM1684", "--sdk-version", "t"]
    proc = run_cli(*args, "--device-id", "cli-1", "--bootstrap-token-file", str(token), "--once")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(*args, "--status")
    status = json.loads(proc.stdout)
    assert status["models"][0]["activeDigest"] == digest(v1)


def test_cli_reports_config_errors(tmp_path) -> None:
    proc = run_cli("--gateway", "https://g", "--state-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "chip is required" in proc.stderr


def test_fleet_of_agents_in_one_process(gateway, tmp_path) -> None:
    n = 24
    model = gateway.model("det", make_bmodel(label="fleet", payload=2048))
    for i in range(n):
        gateway.set_desired(f"sim-{i:04d}", [model])
    with sim.run_agents(gateway.url, n, str(tmp_path), "boot-secret", poll_wait=2) as fleet:
        fleet.wait_until(lambda a: sim.active_digest("det")(a) == model["digest"], timeout=30)
        upgrade = gateway.model("det", make_bmodel(label="fleet2", payload=2048))
        for i in range(n):
            gateway.set_desired(f"sim-{i:04d}", [upgrade])  # wakes every long poll at once
        fleet.wait_until(lambda a: sim.active_digest("det")(a) == upgrade["digest"], timeout=30)
    assert len(gateway.reports) == n
    assert all(gateway.report_model(d, "det")["activeDigest"] == upgrade["digest"] for d in gateway.reports)
