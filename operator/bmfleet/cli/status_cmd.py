"""``bmfleet status | logs | report``: what the operator did, read as a user would (current kubeconfig).

`status` shows builds (phase, stages as a progress bar, gate verdict) and, where their CRDs are installed,
rollouts and devices. `logs` prints a step's latest pod log; `report` finds the gate report on this machine.
Exit codes: 0 success, 1 nothing to show (no such build, pod, log or report).
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from bmfleet.pipeline.names import LABEL_BUILD, LABEL_STAGE, LABEL_STEP

if TYPE_CHECKING:  # the client loads lazily: `bmfleet <other command>` stays fast
    from kubernetes import client

GROUP, VERSION = "bmfleet.io", "v1alpha1"  # bmfleet.api.common's, without loading pydantic
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
STEPS = ("resolve", "compile", "combine", "gate")
BAR = 10


class CliError(Exception):
    """Something to tell the user, without a traceback."""


def _connect() -> tuple[client.ApiClient, str]:
    """The current kubeconfig's client and namespace (as kubectl picks them); in a pod, its ServiceAccount."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient(), SA_NAMESPACE.read_text().strip()
    path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")  # read now, not at import
    try:
        _, active = config.list_kube_config_contexts(config_file=path)
        api: client.ApiClient = config.new_client_from_config(config_file=path)
    except config.ConfigException as exc:
        raise CliError(f"no usable kubeconfig ({path}): {exc}") from exc
    return api, str((active or {}).get("context", {}).get("namespace") or "default")


def progress(done: int, total: int, width: int = BAR) -> str:
    """`[#####.....] 1/2`."""
    filled = round(width * done / total) if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def gate_verdict(build: Mapping[str, Any]) -> str:
    """passed, FAILED (checks failed/all), error: reason, or the step's state; `-` without gates."""
    if not (build.get("spec") or {}).get("gates"):
        return "-"
    gates = (build.get("status") or {}).get("gates") or {}
    state = gates.get("state") or "Pending"
    if state == "Succeeded":
        checks = gates.get("checks") or []
        failed = sum(1 for c in checks if not c.get("passed"))
        return "passed" if gates.get("passed") else f"FAILED ({failed}/{len(checks)} checks)"
    if state == "Failed":
        return f"error: {gates.get('reason') or 'GateRunFailed'}"
    return state.lower()


def _age(meta: Mapping[str, Any], now: datetime) -> str:
    created = meta.get("creationTimestamp")
    if not created:
        return "-"
    seconds = int((now - datetime.fromisoformat(str(created).replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def build_row(build: Mapping[str, Any], now: datetime) -> list[str]:
    """NAME, PHASE, READY, STAGES, GATES, AGE of one build."""
    meta, status = build.get("metadata") or {}, build.get("status") or {}
    shapes = status.get("shapes") or []
    total = len(shapes) or len((build.get("spec") or {}).get("shapes") or [])
    done = sum(1 for s in shapes if s.get("state") == "Succeeded")
    ready = _condition(status, "Ready").get("status", "-")
    phase = status.get("phase") or "-"
    return [meta.get("name", ""), phase, ready, progress(done, total), gate_verdict(build), _age(meta, now)]


def rollout_row(obj: Mapping[str, Any], now: datetime) -> list[str]:
    """NAME, PHASE, READY, ACTIVE (active of targeted devices), MESSAGE, AGE of a rollout."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ready, counts = _condition(status, "Ready"), status.get("counts") or {}
    active = progress(int(counts.get("active") or 0), int(counts.get("targeted") or 0)) if counts else "-"
    message = str(ready.get("message") or "")[:80]
    return [
        meta.get("name", ""),
        status.get("phase") or "-",
        ready.get("status", "-"),
        active,
        message,
        _age(meta, now),
    ]


def device_row(obj: Mapping[str, Any], now: datetime) -> list[str]:
    """NAME, READY, CHIP, SEEN (how long ago it last reported), MESSAGE, AGE of a device."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ready = _condition(status, "Ready")
    chip = status.get("chip") or (obj.get("spec") or {}).get("chip") or "-"
    seen = _age({"creationTimestamp": status.get("lastSeen")}, now)
    message = str(ready.get("message") or "")[:80]
    return [meta.get("name", ""), ready.get("status", "-"), chip, seen, message, _age(meta, now)]


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    """Left-aligned columns, as kubectl prints them."""
    lines = [header, *rows]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines) + "\n"


KINDS: tuple[tuple[str, str, list[str], Callable[[Mapping[str, Any], datetime], list[str]]], ...] = (
    ("builds", "bmodelbuilds", ["NAME", "PHASE", "READY", "STAGES", "GATES", "AGE"], build_row),
    ("rollouts", "bmodelrollouts", ["NAME", "PHASE", "READY", "ACTIVE", "MESSAGE", "AGE"], rollout_row),
    ("devices", "edgedevices", ["NAME", "READY", "CHIP", "SEEN", "MESSAGE", "AGE"], device_row),
)


def _list(custom: client.CustomObjectsApi, plural: str, namespace: str | None) -> list[dict[str, Any]] | None:
    """Objects of one kind; None when the cluster does not serve it (its CRD is not installed)."""
    from kubernetes.client.exceptions import ApiException

    try:
        if namespace is None:
            out = custom.list_cluster_custom_object(GROUP, VERSION, plural)
        else:
            out = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    items: list[dict[str, Any]] = out.get("items") or []
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def status_text(custom: client.CustomObjectsApi, namespace: str | None, now: datetime) -> str:
    """Every section the cluster serves; `namespace` None: all namespaces (with a NAMESPACE column)."""
    sections = []
    for title, plural, header, row in KINDS:
        items = _list(custom, plural, namespace)
        if items is None:
            continue
        if not items:
            sections.append(f"{title}: none\n")
            continue
        rows = [row(o, now) for o in items]
        columns = header
        if namespace is None:
            columns = ["NAMESPACE", *header]
            rows = [[o["metadata"].get("namespace", ""), *r] for o, r in zip(items, rows, strict=True)]
        sections.append(f"{title}:\n{table(columns, rows)}")
    return "\n".join(sections)


def latest_pod(core: client.CoreV1Api, namespace: str, build: str, step: str | None, stage: int | None) -> str:
    """The newest pod of the build (of that step and stage, when given)."""
    selector = [f"{LABEL_BUILD}={build}"]
    if step:
        selector.append(f"{LABEL_STEP}={step}")
    if stage is not None:
        selector.append(f"{LABEL_STAGE}={stage}")
    pods = core.list_namespaced_pod(namespace, label_selector=",".join(selector)).items
    if not pods:
        what = " ".join(x for x in (step, f"stage {stage}" if stage is not None else "") if x)
        raise CliError(f"no pods of build {build}{' (' + what + ')' if what else ''} in namespace {namespace}")
    oldest = datetime.min.replace(tzinfo=UTC)
    created = [(p.metadata.creation_timestamp or oldest, p.metadata.name or "") for p in pods if p.metadata]
    return max(created)[1]


def local_report(core: client.CoreV1Api, namespace: str, uri: str) -> Path:
    """The report's path on this machine: file:// as is; pvc://claim/key through the claim's PV (hostPath or
    local: the sandbox's, or a single-node cluster's). Other stores hold it remotely: say so."""
    from kubernetes.client.exceptions import ApiException

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "oci":
        name = uri.removeprefix("oci://")
        raise CliError(f"{uri}: in a remote store; fetch it with: oras blob fetch --output report.html {name}")
    if parsed.scheme == "s3":
        endpoint = parse_qs(parsed.query).get("endpoint")
        flag = f" --endpoint-url {endpoint[0]}" if endpoint else ""
        key = uri.partition("?")[0]
        raise CliError(f"{uri}: in a remote store; fetch it with: aws s3 cp{flag} {key} report.html")
    if parsed.scheme != "pvc":
        raise CliError(f"{uri}: in a remote store; fetch it from there")
    claim, key = parsed.netloc, unquote(parsed.path).lstrip("/")
    try:
        pvc = core.read_namespaced_persistent_volume_claim(claim, namespace)
    except ApiException as exc:
        raise CliError(f"{uri}: claim {claim!r} in {namespace}: {exc.reason}") from exc
    volume = pvc.spec.volume_name if pvc.spec else None
    if not volume:
        raise CliError(f"{uri}: claim {claim!r} is not bound")
    pv = core.read_persistent_volume(volume).spec
    root = (pv.host_path.path if pv and pv.host_path else None) or (pv.local.path if pv and pv.local else None)
    if not root:
        raise CliError(f"{uri}: PV {volume} is neither hostPath nor local; copy the report out of the volume")
    return Path(root) / key


def _status(args: argparse.Namespace) -> int:
    from kubernetes import client

    api, default_ns = _connect()
    namespace = None if args.all_namespaces else (args.namespace or default_ns)
    sys.stdout.write(status_text(client.CustomObjectsApi(api), namespace, datetime.now(UTC)))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api, default_ns = _connect()
    namespace = args.namespace or default_ns
    core = client.CoreV1Api(api)
    step = args.step or ("compile" if args.stage is not None else None)
    pod = latest_pod(core, namespace, args.build, step, args.stage)
    try:
        text: str = core.read_namespaced_pod_log(pod, namespace, tail_lines=args.tail)
    except ApiException as exc:
        raise CliError(f"pod {pod}: {exc.body or exc.reason}") from exc
    print(f"==> pod {pod}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api, default_ns = _connect()
    namespace = args.namespace or default_ns
    try:
        build = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "bmodelbuilds", args.build
        )
    except ApiException as exc:
        raise CliError(f"build {args.build} in {namespace}: {exc.reason}") from exc
    uri = ((build.get("status") or {}).get("gates") or {}).get("reportUri")
    if not uri:
        raise CliError(f"build {args.build} has no gate report yet (status.gates.reportUri)")
    path = local_report(client.CoreV1Api(api), namespace, str(uri))
    if not path.is_file():
        raise CliError(f"{uri} is {path}, which is not on this machine")
    print(path)
    if args.open:
        webbrowser.open(path.as_uri())
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CliError as exc:
            print(f"bmfleet {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `status`, `logs` and `report`."""
    s = sub.add_parser("status", help="builds (phase, stages, gates), rollouts and devices")
    s.add_argument("--namespace", "-n", default=None, help="default: the kubeconfig context's")
    s.add_argument("--all-namespaces", "-A", action="store_true")
    s.set_defaults(func=_guarded(_status))

    s = sub.add_parser("logs", help="the log of a build step's latest pod")
    s.add_argument("build")
    s.add_argument("--namespace", "-n", default=None, help="default: the kubeconfig context's")
    s.add_argument("--step", choices=STEPS, default=None, help="default: whichever pod is newest")
    s.add_argument("--stage", type=int, default=None, help="compile stage (index in spec.shapes)")
    s.add_argument("--tail", type=int, default=None, help="last N lines only")
    s.set_defaults(func=_guarded(_logs))

    s = sub.add_parser("report", help="print the local path of a build's gate report (--open: in a browser)")
    s.add_argument("build")
    s.add_argument("--namespace", "-n", default=None, help="default: the kubeconfig context's")
    s.add_argument("--open", action="store_true", help="open it in the default browser")
    s.set_defaults(func=_guarded(_report))
