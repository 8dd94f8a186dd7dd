"""``state.json``: what ``sandbox up`` started, so ``down``/``status`` act on exactly those processes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "state.json"


@dataclass
class Component:
    """One started process; ``argv0`` is checked against /proc before any signal is sent."""

    name: str
    pid: int
    argv0: str
    log: str
    port: int | None = None


@dataclass
class State:
    bin_dir: str
    kubeconfig: str
    api_url: str
    ca: str
    etcd_data_dir: str
    ports: dict[str, int] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, state_dir: Path) -> None:
        """Write atomically so a concurrent ``status`` never reads half a file."""
        tmp = state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, state_dir / STATE_FILE)


def load(state_dir: Path) -> State | None:
    """Return the recorded state, or None if nothing was started here."""
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    components = [Component(**c) for c in raw.pop("components", [])]
    return State(components=components, **raw)


def remove(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)
