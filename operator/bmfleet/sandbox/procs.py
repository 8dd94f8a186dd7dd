"""Start, probe and stop detached component processes, touching only PIDs we recorded ourselves."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bmfleet.sandbox.state import Component

POLL_SECONDS = 0.2

# Keep the Popen objects of children started by this process: reaping them later avoids zombies (and
# ResourceWarnings) when the same process also stops them, as the pytest fixture does.
_children: dict[int, subprocess.Popen[bytes]] = {}


class ComponentError(RuntimeError):
    """A component failed to start or become healthy; the message carries the tail of its log."""


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (the tiny race until each component binds its port is accepted)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def launch(name: str, argv: list[str], log_dir: Path, env: Mapping[str, str], port: int | None = None) -> Component:
    """Start ``argv`` in its own session (it survives the caller), logging to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=log_dir.parent,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    component = Component(name=name, pid=proc.pid, argv0=argv[0], log=str(log), port=port)
    # Right after exec, /proc/<pid>/cmdline can briefly read empty; settle so is_alive() is meaningful.
    deadline = time.monotonic() + 2.0
    while not is_alive(component) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return component


def is_alive(component: Component) -> bool:
    """True if the PID still runs the recorded binary (not a zombie, not a recycled PID)."""
    _reap(component.pid)
    proc = Path(f"/proc/{component.pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes()
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and cmdline.split(b"\0", 1)[0] == component.argv0.encode()


def terminate(component: Component, grace_seconds: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace_seconds``, then SIGKILL; a no-op if the process is already gone."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        if not is_alive(component):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(component.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_alive(component):
            time.sleep(POLL_SECONDS)
    if is_alive(component):
        raise ComponentError(f"{component.name} (pid {component.pid}) survived SIGKILL")


def rss_kib(pid: int) -> int | None:
    """Resident set size from /proc, or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def log_tail(component: Component, lines: int = 40) -> str:
    try:
        text = Path(component.log).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(component: Component, probe: Callable[[], bool], timeout: float) -> float:
    """Poll ``probe`` until it passes; fail fast if the process dies. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - start
        if not is_alive(component):
            raise ComponentError(f"{component.name} exited during startup; log tail:\n{log_tail(component)}")
        if time.monotonic() - start > timeout:
            raise ComponentError(f"{component.name} not healthy after {timeout:.0f}s; log tail:\n{log_tail(component)}")
        time.sleep(POLL_SECONDS)


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]
