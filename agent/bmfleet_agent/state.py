"""The agent's JSON state file: what the gateway asked for and where each model stands.

The symlinks under ``models/<name>/`` are the truth about what is active; this file records intent (desired
state, an activation in progress, failures not to retry) so a restarted agent, possibly offline, carries on.
It is replaced atomically, so a crash leaves the previous version.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from bmfleet_agent import fsutil

SCHEMA = 1


@dataclasses.dataclass
class ModelRecord:
    desired_key: str = ""  # DesiredModel.key being worked on
    done_key: str = ""  # key that reached an end (Active, RolledBack, terminal Failed): not retried
    desired_digest: Optional[str] = None
    staged_digest: Optional[str] = None
    active_digest: Optional[str] = None
    previous_digest: Optional[str] = None
    state: str = ""
    reason: str = ""
    message: str = ""
    size: int = 0
    bytes_downloaded: int = 0
    attempts: int = 0
    retry_at: float = 0.0
    activating: Optional[str] = None  # digest being swapped in and probed (set before the swap)
    activating_from: Optional[str] = None  # what was active before it
    activating_previous: Optional[str] = None  # and what was previous (restored if the probe fails)
    rollout_id: str = ""
    generation: int = 0


@dataclasses.dataclass
class AgentState:
    desired_version: int = 0
    desired: Optional[Dict[str, Any]] = None  # the last desired-state document, as received
    models: Dict[str, ModelRecord] = dataclasses.field(default_factory=dict)

    def record(self, name: str) -> ModelRecord:
        return self.models.setdefault(name, ModelRecord())

    def to_json(self) -> Dict[str, Any]:
        return {
            "schema": SCHEMA,
            "desiredVersion": self.desired_version,
            "desired": self.desired,
            "models": {k: dataclasses.asdict(v) for k, v in sorted(self.models.items())},
        }


_FIELDS = {f.name for f in dataclasses.fields(ModelRecord)}


def load(path: str) -> AgentState:
    """Read the state file; a missing file is a fresh device. A corrupt one is set aside, not trusted."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return AgentState()
    except ValueError:
        # Cannot happen through atomic writes; a disk fault can. Keep the evidence, start from the symlinks.
        fsutil.checkpoint(f"rename corrupt {path}")
        os.replace(path, path + ".corrupt")
        return AgentState()
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return AgentState()
    models = {}
    for name, raw in (doc.get("models") or {}).items():
        if isinstance(raw, dict):
            models[name] = ModelRecord(**{k: v for k, v in raw.items() if k in _FIELDS})
    desired = doc.get("desired")
    return AgentState(
        desired_version=int(doc.get("desiredVersion") or 0),
        desired=desired if isinstance(desired, dict) else None,
        models=models,
    )


def save(path: str, state: AgentState) -> None:
    data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode("utf-8")
    fsutil.atomic_write(path, data)
