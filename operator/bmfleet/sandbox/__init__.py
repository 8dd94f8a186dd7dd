"""bmfleet.sandbox: a real local control plane (etcd, apiserver, KCM, scheduler, kwok) for tests and demos.

Dev tooling only: product packages must not import it (see the import-linter contracts).
"""

from bmfleet.sandbox.controlplane import (
    AlreadyRunningError,
    Sandbox,
    SandboxError,
    Status,
    api_client_for,
    find_binaries,
    find_repo_root,
    is_running,
    load_sandbox,
    start,
    status,
    stop,
    token_kubeconfig,
)
from bmfleet.sandbox.kubeconfig import NotLoopbackError, require_loopback
from bmfleet.sandbox.stages import HOLD_ANNOTATION, OUTCOME_ANNOTATION

__all__ = [
    "HOLD_ANNOTATION",
    "OUTCOME_ANNOTATION",
    "AlreadyRunningError",
    "NotLoopbackError",
    "Sandbox",
    "SandboxError",
    "Status",
    "api_client_for",
    "find_binaries",
    "find_repo_root",
    "is_running",
    "load_sandbox",
    "require_loopback",
    "start",
    "status",
    "stop",
    "token_kubeconfig",
]
