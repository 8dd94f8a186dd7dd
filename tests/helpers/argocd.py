"""Run the chart's Argo CD health scripts the way Argo CD does: Lua 5.1 (Argo CD embeds gopher-lua, a 5.1
implementation) with only the libraries Argo CD opens when `resource.customizations.useOpenLibs` is off (base,
table, package and a safe `os`), the resource in the global `obj`, the script's return value read as `hs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lupa.lua51 import LuaRuntime

HEALTH_DIR = Path(__file__).resolve().parents[2] / "charts" / "bmfleet" / "argocd" / "bmfleet.io"
KINDS = ("BModelBuild", "BModelRollout", "EdgeDevice")
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
NOT_IN_ARGO = ("string", "math", "io", "os", "debug", "coroutine", "python")  # a script must not need these


def script(kind: str) -> str:
    """The health.lua of one kind."""
    return (HEALTH_DIR / kind / "health.lua").read_text()


def run(source: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(hs.status, hs.message) of a health script for `obj`, in a fresh Lua state."""
    lua = LuaRuntime(register_eval=False, register_builtins=False)
    for lib in NOT_IN_ARGO:
        lua.globals()[lib] = None
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(source)
    return str(hs["status"]), str(hs["message"])


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """What the chart's script for `kind` says about `obj`."""
    return run(script(kind), obj)


def health_tests(kind: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """Argo CD's `health_test.yaml` cases of one kind: (input path, object, expected healthStatus)."""
    base = HEALTH_DIR / kind
    spec = yaml.safe_load((base / "health_test.yaml").read_text())
    return [
        (t["inputPath"], yaml.safe_load((base / t["inputPath"]).read_text()), t["healthStatus"]) for t in spec["tests"]
    ]
