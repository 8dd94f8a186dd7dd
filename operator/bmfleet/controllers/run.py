"""Run the operator in this process: kopf with bmfleet's handlers, standalone (one replica, Recreate)."""

from __future__ import annotations

import kopf

import bmfleet.controllers.handlers  # noqa: F401  (registers the handlers)


def run(namespaces: list[str], liveness: str | None, verbose: bool) -> int:
    """Run until interrupted. Namespaces: the given ones, else the whole cluster."""
    kopf.configure(verbose=verbose)
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces, liveness_endpoint=liveness)
    return 0
