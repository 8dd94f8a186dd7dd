"""kopf handlers: thin. They fetch, call `builds.reconcile`, write status when it changed, post Events."""

from __future__ import annotations

from typing import Any, cast

import kopf

from bmfleet.api.common import GROUP, VERSION
from bmfleet.controllers import metrics
from bmfleet.controllers import settings as operator_settings
from bmfleet.controllers.builds import Cache, Outcome, build_lock, reconcile, status_changed
from bmfleet.controllers.kube import BUILDS, Kube, NamespaceTerminatingError, get_object, make_api_client
from bmfleet.pipeline.names import LABEL_BUILD
from bmfleet.pipeline.status import RESULT_FIELDS

EVENT_TYPES = {
    "Combining": "Normal",
    "Combined": "Normal",
    "Compiled": "Normal",
    "Compiling": "Normal",
    "Pending": "Normal",
    "Failed": "Warning",
    "Stalled": "Warning",
}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Settings, the API client and the worker configuration, once per process."""
    operator_settings.apply(settings)
    memo.kube = Kube(make_api_client())
    memo.config = operator_settings.worker_config_from_env()


@kopf.on.probe(id="builds")
def probe(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: the API answers with our identity."""
    memo.kube.core.get_api_resources(_request_timeout=5)
    return "ok"


@kopf.index(GROUP, VERSION, BUILDS)
async def artifacts(status: kopf.Status, **_: Any) -> dict[str, dict[str, Any]]:
    """Compile/combine cache: every stored artifact a build reports, by its cache key. kopf keeps the index
    from the watch, so a lookup costs no API call and the cache survives restarts (it lives in status)."""
    entries = [*(status.get("shapes") or []), *([status["combine"]] if status.get("combine") else [])]
    return {
        e["cacheKey"]: {k: e[k] for k in RESULT_FIELDS if k in e}
        for e in entries
        if e.get("state") == "Succeeded" and e.get("cacheKey") and e.get("uri")
    }


@kopf.index(GROUP, VERSION, BUILDS)
async def build_phases(status: kopf.Status, name: str, **_: Any) -> dict[str, str]:
    """Builds by phase, for the `bmfleet_builds` gauge (kopf keeps it from the watch, deletions included)."""
    return {str(status.get("phase") or "Unknown"): name}


@kopf.on.startup()
def expose_metrics(**kwargs: Any) -> None:
    """Indices exist before the watches start: hand this one to the metrics."""
    metrics.watch_builds(kwargs["build_phases"])


def _lookup(index: kopf.Index[str, dict[str, Any]]) -> Cache:
    def lookup(key: str) -> dict[str, Any] | None:
        return next(iter(index.get(key, [])), None)

    return lookup


@kopf.on.resume(GROUP, VERSION, BUILDS)
@kopf.on.create(GROUP, VERSION, BUILDS, backoff=3)
@kopf.on.update(GROUP, VERSION, BUILDS, field="spec", backoff=3)
def bmodelbuild_reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A build appeared, changed its spec, or the operator (re)started."""
    ns, name = body.metadata.namespace or "", body.metadata.name or ""
    outcome = _reconcile(memo, ns, name, logger, _lookup(kwargs["artifacts"]))
    if outcome is not None and outcome.retry_after is not None:
        stalled = next(c for c in outcome.status["conditions"] if c["type"] == "Stalled")
        raise kopf.TemporaryError(stalled["message"], delay=outcome.retry_after)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_BUILD: kopf.PRESENT})
def compile_job_event(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A child Job changed: reconcile its build (found through the controller owner reference)."""
    owner = next(
        (o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == "BModelBuild" and o.get("controller")),
        None,
    )
    if owner is not None:
        _reconcile(memo, body.metadata.namespace or "", owner["name"], logger, _lookup(kwargs["artifacts"]))


def _finished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")


@kopf.on.event("", "v1", "pods", labels={LABEL_BUILD: kopf.PRESENT}, when=_finished)
def worker_pod_finished(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A worker pod finished: its result record is there now, a second before the Job says Complete."""
    build = body.metadata.labels.get(LABEL_BUILD)
    if build:
        _reconcile(memo, body.metadata.namespace or "", build, logger, _lookup(kwargs["artifacts"]), pod_finished=True)


def _result(outcome: Outcome | None) -> str:
    return "requeue_after" if outcome is not None and outcome.retry_after is not None else "success"


@metrics.timed("bmodelbuild", _result)
def _reconcile(
    memo: kopf.Memo, namespace: str, name: str, logger: kopf.Logger, cache: Cache, pod_finished: bool = False
) -> Outcome | None:
    kube: Kube = memo.kube
    with build_lock(namespace, name):
        # Read under the lock: a reconcile started by a Job event sees what the previous one wrote.
        build = get_object(kube, namespace, BUILDS, name)
        if build is None or build["metadata"].get("deletionTimestamp"):
            return None
        try:
            outcome = reconcile(kube, build, memo.config, cache, pod_finished)
        except NamespaceTerminatingError:
            logger.debug("namespace %s is terminating; nothing to reconcile", namespace)
            return None
        old = build.get("status") or {}
        if status_changed(old, outcome.status):
            kube.patch_build_status(namespace, name, outcome.status)
            metrics.record_status(old, outcome.status)  # under the lock: each finished step once
    _post_events(build, old, outcome, logger)
    return outcome


def _post_events(raw: dict[str, Any], old: dict[str, Any], outcome: Outcome, logger: kopf.Logger) -> None:
    """Events on transitions only: a Job made or removed, a phase entered."""
    build = kopf.Body(cast(kopf.RawBody, raw))
    for index, job in outcome.created:
        what = f"compile Job {job} for stage {index}" if index >= 0 else f"combine Job {job}"
        kopf.info(build, reason="JobCreated", message=f"created {what}")
    for job in outcome.deleted:
        kopf.info(build, reason="StaleJobDeleted", message=f"deleted Job {job}: it no longer matches the spec")
    phase = outcome.status.get("phase")
    if phase and phase != old.get("phase"):
        ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
        kopf.event(build, type=EVENT_TYPES.get(phase, "Normal"), reason=phase, message=ready["message"][:1024])
        logger.info("phase %s -> %s: %s", old.get("phase"), phase, ready["message"])
