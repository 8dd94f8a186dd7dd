"""kill -9 the agent at every filesystem step of an upgrade (and at random instants), then check the disk.

The agent runs as a real subprocess (``python -m bmfleet_agent --once``). ``BMFLEET_AGENT_CRASH_AT=N`` makes
it SIGKILL itself at its N-th filesystem step, so the sweep covers every write, fsync'd rename and symlink
swap of an install and of a probe-failure rollback. After each kill the test checks, with its own code, that
``current`` resolves to a complete file whose sha256 is the old or the new model and that state.json
parses; then a restarted agent recovers and must finish the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bmfleet_agent import fsutil
from bmfleet_agent.agent import Agent
from bmfleet_agent.config import Config
from bmodels import digest, make_bmodel
from conftest import install

AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE = "dev-crash"
CHUNK = 4096
CHAINED_KILLS = 48  # with the two sweeps (24 + 26 steps) and the timed kills: 110 runs, ~100 of them killed
TIMED_KILLS = 12


def config(gateway, state_dir: str, probe_command: str = "") -> Config:
    return Config(gateway=gateway.url, state_dir=state_dir, chip="BM1684", bootstrap_token="boot-secret",
                  device_id=DEVICE, poll_wait=0, sdk_version="t", chunk_size=CHUNK,
                  probe_command=probe_command).validate()  # fmt: skip


def command(gateway, state_dir: str, probe_command: str):
    argv = [sys.executable, "-m", "bmfleet_agent", "--once", "--gateway", gateway.url, "--state-dir", state_dir,
            "--chip", "BM1684", "--poll-wait", "0", "--sdk-version", "t"]  # fmt: skip
    return argv + (["--probe-command", probe_command] if probe_command else [])


def environment(crash_at: int = 0):
    env = dict(os.environ, PYTHONPATH=AGENT_DIR, BMFLEET_CHUNK_SIZE=str(CHUNK))
    env.pop(fsutil.CRASH_ENV, None)
    if crash_at:
        env[fsutil.CRASH_ENV] = str(crash_at)
    return env


def run_agent(gw, state_dir: str, probe_command: str = "", crash_at: int = 0):
    return subprocess.run(command(gw, state_dir, probe_command), env=environment(crash_at), capture_output=True,
                          check=False)  # fmt: skip


def check_disk(state_dir: str, allowed: set) -> str:
    """Independent of the agent's code: the active file is whole and verified, the state file parses."""
    with open(os.path.join(state_dir, "state.json")) as f:
        json.load(f)
    model = os.path.join(state_dir, "models", "det")
    target = os.readlink(os.path.join(model, "current"))
    with open(os.path.join(model, target), "rb") as f:
        got = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    assert got in allowed, f"current -> {target} hashes to {got}"
    assert os.path.basename(target) == f"sha256-{got[7:]}.bmodel"
    return got


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from gateway_double import GatewayDouble

    gw = GatewayDouble().start()
    base = str(tmp_path_factory.mktemp("crash") / "base")
    old, new = make_bmodel(label="old", payload=3000), make_bmodel(label="new", payload=5 * CHUNK)
    agent = Agent(config(gw, base), log=logging.getLogger("test"))
    install(agent, gw, DEVICE, [gw.model("det", old)])
    gw.set_desired(DEVICE, [gw.model("det", new)])  # every run below starts from "old active, new desired"
    yield gw, base, digest(old), digest(new)
    gw.stop()


def finish(gw, state_dir: str, probe_command: str) -> Agent:
    agent = Agent(config(gw, state_dir, probe_command), log=logging.getLogger("test"))
    agent.run_once()
    leftovers = [f for _, _, files in os.walk(state_dir) for f in files if f.endswith((".tmp", ".part"))]
    assert leftovers == []
    return agent


def count_steps(gw, base: str, work: str, probe_command: str) -> int:
    shutil.copytree(base, work, symlinks=True)
    before = fsutil.steps_taken()
    finish(gw, work, probe_command)
    shutil.rmtree(work)
    return fsutil.steps_taken() - before


@pytest.mark.parametrize(("probe_command", "expected"), [("", "new"), ("false", "old")])
def test_kill_at_every_filesystem_step(setup, tmp_path, probe_command, expected) -> None:
    gw, base, old, new = setup
    steps = count_steps(gw, base, str(tmp_path / "count"), probe_command)
    assert steps >= 15  # download chunks, renames, symlink swaps, state writes
    for k in range(1, steps + 1):
        work = str(tmp_path / f"k{k}")
        shutil.copytree(base, work, symlinks=True)
        proc = run_agent(gw, work, probe_command, crash_at=k)
        assert proc.returncode == -signal.SIGKILL, (k, proc.stderr.decode()[-2000:])
        check_disk(work, {old, new})
        agent = finish(gw, work, probe_command)
        assert check_disk(work, {old, new}) == {"new": new, "old": old}[expected]
        assert agent.reconciler.dir("det").previous() == (old if expected == "new" else None)
        want = ("Active", "") if expected == "new" else ("Failed", "ProbeFailed")
        rec = agent.state.models["det"]
        assert (rec.state, rec.reason) == want, k
        shutil.rmtree(work)
    work = str(tmp_path / "complete")
    shutil.copytree(base, work, symlinks=True)
    proc = run_agent(gw, work, probe_command, crash_at=steps + 1)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]  # the sweep covered every step: N+1 completes
    print(f"{steps} filesystem steps, each killed once")


def test_kill_again_and_again_also_during_recovery(setup, tmp_path) -> None:
    """Kill at a random step, restart on the same disk, kill again: recovery itself gets interrupted too."""
    gw, base, old, new = setup
    rng = random.Random(1234)
    work = str(tmp_path / "chain")
    shutil.copytree(base, work, symlinks=True)
    kills = completed = 0
    for _ in range(CHAINED_KILLS):
        proc = run_agent(gw, work, crash_at=rng.randint(1, 16))
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()[-2000:]
        got = check_disk(work, {old, new})
        if proc.returncode == 0:
            assert got == new
            completed += 1
            shutil.rmtree(work)
            shutil.copytree(base, work, symlinks=True)
        else:
            kills += 1
    print(f"{kills} kills, {completed} completed upgrades")
    assert kills >= CHAINED_KILLS * 3 // 4 and completed >= 2


def test_kill_at_random_instants(setup, tmp_path) -> None:
    """The same check with kills from outside at random times, independent of the agent's own hook."""
    gw, base, old, new = setup
    rng = random.Random(4321)
    work = str(tmp_path / "timing")
    shutil.copytree(base, work, symlinks=True)
    start = time.monotonic()
    subprocess.run(command(gw, work, ""), env=environment(), check=True, capture_output=True)
    full = time.monotonic() - start
    killed = 0
    for i in range(TIMED_KILLS):
        work = str(tmp_path / f"r{i}")
        shutil.copytree(base, work, symlinks=True)
        proc = subprocess.Popen(command(gw, work, ""), env=environment(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.0, full))
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait() == -signal.SIGKILL
        check_disk(work, {old, new})
        finish(gw, work, "")
        assert check_disk(work, {old, new}) == new
        shutil.rmtree(work)
    print(f"{killed} of {TIMED_KILLS} timed kills landed before the agent finished")
    assert killed >= TIMED_KILLS // 2
