"""Inside a private mount namespace (`unshare -m`): mount the pod's volumes at their paths, then exec the
container's command. Run only by the sandbox kubelet; usage: python -m bmfleet.sandbox.podexec SPEC.json

Mount targets must lie under POD_ROOT: a fresh tmpfs is mounted there first, so mount points are made inside
the namespace and nothing is created or hidden on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

POD_ROOT = "/run"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def prepare(spec: dict[str, object]) -> None:
    """tmpfs on POD_ROOT, then each (host, target, read_only) bind mount."""
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", POD_ROOT)
    for host, target, read_only in spec["mounts"]:  # type: ignore[attr-defined]
        Path(target).mkdir(parents=True, exist_ok=True)
        if Path(host).is_file():  # a file mount (the termination log) needs a file to mount on
            Path(target).rmdir()
            Path(target).touch()
        _mount("--bind", host, target)
        if read_only:
            _mount("-o", "remount,bind,ro", target)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    prepare(spec)
    os.chdir(spec["workingDir"] or "/")
    command: list[str] = spec["command"]
    os.execvpe(command[0], command, spec["env"])  # noqa: S606  (the pod's own command, as a kubelet runs it)


if __name__ == "__main__":
    main()
