"""kopf settings, each chosen on purpose (see ../shared/docs/reference/operator-conventions.md §3.2)."""

from __future__ import annotations

import logging
import os

import kopf

from bmfleet.pipeline.jobs import WorkerConfig

DEFAULT_WORKER_IMAGE = "ghcr.io/bmfleet/bmfleet:0.1.0"


def worker_config_from_env() -> WorkerConfig:
    """Worker images per toolchain: BMFLEET_WORKER_IMAGE for all, BMFLEET_WORKER_IMAGE_TPU_MLIR /
    _BMNETU to override one. An explicitly empty value means "none configured" (builds then stall with a
    clear reason instead of running an image nobody chose)."""
    default = os.environ.get("BMFLEET_WORKER_IMAGE", DEFAULT_WORKER_IMAGE)
    images = {}
    for toolchain in ("tpu-mlir", "bmnetu"):
        env = "BMFLEET_WORKER_IMAGE_" + toolchain.upper().replace("-", "_")
        image = os.environ.get(env, default)
        if image:
            images[toolchain] = image
    return WorkerConfig(images=images)


def apply(settings: kopf.OperatorSettings) -> None:
    """Apply bmfleet's choices to kopf's settings."""
    # Watches: the server ends each watch after 10 min and kopf re-establishes it; the client cap is a bit
    # longer so a server that never closes is still caught. Idle streams that silently stall behind NAT/LBs
    # (nolar/kopf#847, #204, #698) are caught by inactivity_timeout (kopf >= 1.44, Python >= 3.11: default
    # 70 s with bookmarks), which we keep.
    settings.watching.server_timeout = 10 * 60
    settings.watching.client_timeout = 11 * 60
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    # A stuck PATCH should fail in a minute, not kopf's default 5.
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # Names fixed on day one: changing them later makes kopf re-run handlers on every object.
    # No handler of ours needs a finalizer (children go with owner references), so none is added; the name
    # is still set so that one added later is ours and not kopf's default.
    settings.persistence.finalizer = "bmfleet.io/finalizer"
    # Progress and diff-base in annotations, not status: status is pruned to our schema
    # (zalando-incubator/kopf#321) and is owned by our controllers.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="bmfleet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="bmfleet.io", key="last-handled-configuration"
    )
    # Events: ours only (posted on transitions), with our name on them; log lines are not Events.
    settings.posting.level = logging.INFO
    settings.posting.loggers = False
    settings.posting.reporting_component = "bmfleet-operator"
    settings.posting.reporting_instance = os.environ.get("POD_NAME", "local")
    # One replica with a Recreate strategy: no peering objects needed (and none to grant RBAC for).
    settings.peering.standalone = True
    # No CRD/namespace discovery: we serve fixed resources, so RBAC needs no cluster-wide list on either.
    settings.scanning.disabled = True
    # Sync handlers (the official client is sync) run in this pool; bounded so a burst cannot starve the loop.
    settings.execution.max_workers = 8
    # No limit on kopf's per-object workers (asyncio tasks; the pool above bounds the real work): at start each
    # worker indexes its object, then waits until every object is indexed, so a limit below the number of objects
    # (a fleet of EdgeDevices) deadlocks the operator (nolar/kopf#1243).
    settings.queueing.worker_limit = None
