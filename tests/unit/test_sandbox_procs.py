"""Process bookkeeping: stop() signals only live PIDs that still run the recorded binary."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from bmfleet.sandbox import controlplane, procs
from bmfleet.sandbox import state as state_mod
from bmfleet.sandbox.state import Component, State

SLEEP = shutil.which("sleep") or "/bin/sleep"


def _state(tmp_path: Path, comps: list[Component], etcd_dir: Path) -> State:
    st = State(
        bin_dir="/nonexistent",
        kubeconfig=str(tmp_path / "admin.kubeconfig"),
        api_url="https://127.0.0.1:1",
        ca=str(tmp_path / "pki" / "ca.crt"),
        etcd_data_dir=str(etcd_dir),
        components=comps,
    )
    st.save(tmp_path)
    return st


def test_launch_is_detached_and_logged(tmp_path: Path) -> None:
    comp = procs.launch("sleeper", [SLEEP, "60"], tmp_path / "logs", dict(os.environ))
    try:
        assert procs.is_alive(comp)
        assert os.getsid(comp.pid) == comp.pid  # its own session: survives the CLI that started it
        assert Path(comp.log) == tmp_path / "logs" / "sleeper.log"
        assert procs.rss_kib(comp.pid)
    finally:
        procs.terminate(comp)
    assert not procs.is_alive(comp)
    assert procs.rss_kib(comp.pid) is None


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    comp = procs.launch("sleeper", [SLEEP, "60"], tmp_path / "logs", dict(os.environ))
    impostor = Component(name="kwok", pid=comp.pid, argv0="/somewhere/else/kwok", log=comp.log)
    try:
        assert not procs.is_alive(impostor)
        procs.terminate(impostor)
        assert procs.is_alive(comp)
    finally:
        procs.terminate(comp)


def test_sigkill_after_grace(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    comp = procs.launch("stubborn", [sys.executable, "-c", code], tmp_path / "logs", dict(os.environ))
    deadline = time.monotonic() + 10
    while "up" not in Path(comp.log).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    procs.terminate(comp, grace_seconds=0.5)
    assert not procs.is_alive(comp)
    assert time.monotonic() - began < 5


def test_wait_ready_reports_log_tail_when_process_dies(tmp_path: Path) -> None:
    comp = procs.launch(
        "crasher",
        [sys.executable, "-c", "print('bad flag --nope'); raise SystemExit(3)"],
        tmp_path / "logs",
        {},
    )
    with pytest.raises(procs.ComponentError, match="bad flag --nope"):
        procs.wait_ready(comp, lambda: False, timeout=10)


def test_wait_ready_times_out(tmp_path: Path) -> None:
    comp = procs.launch("sleeper", [SLEEP, "60"], tmp_path / "logs", dict(os.environ))
    try:
        with pytest.raises(procs.ComponentError, match="not healthy after"):
            procs.wait_ready(comp, lambda: False, timeout=0.3)
    finally:
        procs.terminate(comp)


def test_stop_in_reverse_order_tolerates_dead_and_foreign(tmp_path: Path) -> None:
    alive = procs.launch("etcd", [SLEEP, "60"], tmp_path / "logs", dict(os.environ))
    foreign = procs.launch("foreign", [SLEEP, "60"], tmp_path / "logs", dict(os.environ))
    dead = Component(name="kube-apiserver", pid=2**22 + 7, argv0="/x/kube-apiserver", log="/dev/null")
    mislabelled = Component(name="kwok", pid=foreign.pid, argv0="/x/kwok", log="/dev/null")
    etcd_dir = tmp_path / "etcd"
    etcd_dir.mkdir()
    _state(tmp_path, [alive, dead, mislabelled], etcd_dir)
    try:
        controlplane.stop(tmp_path)
        assert not procs.is_alive(alive)
        assert procs.is_alive(foreign)
        assert not etcd_dir.exists()
        assert state_mod.load(tmp_path) is None
        controlplane.stop(tmp_path)  # idempotent
    finally:
        os.kill(foreign.pid, signal.SIGKILL)


def test_stop_never_removes_foreign_etcd_dirs(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    _state(tmp_path, [], precious)
    controlplane.stop(tmp_path)
    assert precious.exists()


def test_status_of_empty_and_dead_state(tmp_path: Path) -> None:
    assert not controlplane.is_running(tmp_path)
    assert controlplane.status(tmp_path).sandbox is None
    dead = Component(name="etcd", pid=2**22 + 9, argv0="/x/etcd", log="/dev/null")
    _state(tmp_path, [dead], tmp_path / "etcd")
    st = controlplane.status(tmp_path)
    assert not st.running
    assert not st.api_ok
    assert [(c.name, c.alive) for c in st.components] == [("etcd", False)]
    assert controlplane.load_sandbox(tmp_path) is None


def test_free_ports_are_distinct() -> None:
    ports = procs.free_ports(6)
    assert len(set(ports)) == 6
