"""Run the operator in this process: kopf with bmfleet's handlers, standalone (one replica, Recreate)."""

from __future__ import annotations

import kopf

import bmfleet.controllers.handlers  # noqa: F401  (registers the handlers)
from bmfleet.controllers import rollout_handlers  # noqa: F401  (registers the rollout handlers)
from bmfleet.controllers.metrics import serve


def run(namespaces: list[str], liveness: str | None, verbose: bool, metrics_bind: str | None = None) -> int:
    """Run until interrupted. Namespaces: the given ones, else the whole cluster. `metrics_bind`
    (host:port): serve Prometheus /metrics there, apart from kopf's liveness endpoint."""
    kopf.configure(verbose=verbose)
    if metrics_bind:
        serve(metrics_bind)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(namespaces=list(namespaces)),
    )
    return 0
