"""Many simulated agents in one process, for fleet benchmarks against a real or test gateway.

Each agent is a real :class:`Agent` with its own state directory and credential; they share only the
process. A few hundred fit in one process because the agent's cost is a thread blocked in a long poll.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, List, Optional

from bmfleet_agent.agent import Agent
from bmfleet_agent.config import Config
from bmfleet_agent.probe import Probe


class Fleet:
    """`n` agents named ``<prefix>-0000`` ... under `base_dir`, each in its own thread."""

    def __init__(
        self,
        gateway: str,
        n: int,
        base_dir: str,
        bootstrap_token: str,
        chip: str = "BM1684",
        poll_wait: int = 30,
        ca_bundle: Optional[str] = None,
        prefix: str = "sim",
        probe: Optional[Probe] = None,
        heartbeat: float = 60.0,
    ) -> None:
        self.stop_event = threading.Event()
        self.agents: List[Agent] = []
        self.threads: List[threading.Thread] = []
        log = logging.getLogger("bmfleet_agent.sim")
        for i in range(n):
            device = f"{prefix}-{i:04d}"
            config = Config(
                gateway=gateway, state_dir=os.path.join(base_dir, device), chip=chip,
                bootstrap_token=bootstrap_token, device_id=device, ca_bundle=ca_bundle, poll_wait=poll_wait,
                heartbeat=heartbeat, sdk_version="sim",
            ).validate()  # fmt: skip
            self.agents.append(Agent(config, probe=probe, log=log))

    def _run(self, agent: Agent) -> None:
        while not self.stop_event.is_set():
            try:
                agent.run(self.stop_event)
            except Exception:  # keep the simulated device alive, like a supervisor restarting it
                logging.getLogger("bmfleet_agent.sim").exception("agent %s crashed", agent.config.device_id)
                self.stop_event.wait(1.0)

    def start(self) -> Fleet:
        if self.threads:
            return self
        for agent in self.agents:
            t = threading.Thread(target=self._run, args=(agent,), name=agent.config.device_id, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def wait_until(self, predicate: Callable[[Agent], bool], timeout: float) -> float:
        """Seconds until `predicate` holds for every agent; raises TimeoutError after `timeout`."""
        start = time.monotonic()
        while not all(predicate(a) for a in self.agents):
            if time.monotonic() - start > timeout:
                done = sum(1 for a in self.agents if predicate(a))
                raise TimeoutError(f"{done}/{len(self.agents)} agents done after {timeout}s")
            time.sleep(0.05)
        return time.monotonic() - start

    def stop(self, timeout: float = 60.0) -> None:
        """Stop and join (an agent inside a long poll returns when the poll does)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Fleet:
        return self.start()  # a no-op for a fleet from run_agents, which is already running

    def __exit__(self, *exc: object) -> None:
        self.stop()


def active_digest(name: str) -> Callable[[Agent], Optional[str]]:
    """Helper for predicates: the digest an agent has active for model `name`."""
    return lambda a: a.state.models[name].active_digest if name in a.state.models else None


def run_agents(gateway: str, n: int, base_dir: str, bootstrap_token: str, **kwargs: object) -> Fleet:
    """Start `n` agents against one gateway URL; stop them with ``fleet.stop()``."""
    return Fleet(gateway, n, base_dir, bootstrap_token, **kwargs).start()  # type: ignore[arg-type]
