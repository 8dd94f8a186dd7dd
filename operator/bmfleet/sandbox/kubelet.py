"""A kubelet for the sandbox: runs pods annotated `sandbox.bmfleet.io/execute: "true"` for real.

kwok simulates every other pod. For these, once the scheduler has bound them to a node, this process runs the
container's command, args and environment as a local process, in a private mount namespace where the pod's
volumes (emptyDir, Secrets read with the kubelet's own client, and PVCs bound to hostPath/local PVs) appear at
their mountPaths, and reports the pod's phase, container state, exit code and termination message back through
`pods/status`, as a kubelet would.
The image is not pulled: the process runs with this machine's bmfleet installation on PATH. Its output is
kept in the CRI log format with a kwok `Logs` object pointing at it, so `pods/log` (kubectl logs) answers
through kwok, the nodes' kubelet endpoint.

    python -m bmfleet.sandbox.kubelet --kubeconfig ADMIN --state-dir DIR --port PORT
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bmfleet.sandbox.controlplane import api_client_for
from bmfleet.sandbox.podexec import POD_ROOT
from bmfleet.sandbox.stages import EXECUTE_ANNOTATION

RUNS_FILE = "runs.jsonl"
TERMINATION_LIMIT = 4096  # bytes of termination message a kubelet keeps per container
KWOK = ("kwok.x-k8s.io", "v1alpha1")
LOGS_CRD: dict[str, Any] = {  # kwok's Logs resource (kwok --enable-crds=Logs), schema left open
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "logs.kwok.x-k8s.io"},
    "spec": {
        "group": KWOK[0],
        "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs", "singular": "logs"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": KWOK[1],
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
log = logging.getLogger("bmfleet.sandbox.kubelet")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cri_log(output: bytes, when: datetime) -> bytes:
    """A container's output as CRI log lines (`<RFC 3339 time> stdout F <line>`), what kwok serves from."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    return b"".join(stamp + b" stdout F " + line + b"\n" for line in output.splitlines())


def _conditions(ready: bool, reason: str | None = None) -> list[dict[str, Any]]:
    now = _now()
    out: list[dict[str, Any]] = [
        {"type": t, "status": "True", "lastTransitionTime": now} for t in ("PodScheduled", "Initialized")
    ]
    for t in ("ContainersReady", "Ready"):
        cond = {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    return out


def _container(c: dict[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": c["name"],
        "image": c["image"],
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def write_secret_volume(
    dest: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, default_mode: int
) -> None:
    """A Secret volume's files, as the kubelet lays them out: every key as a file named by the key, or only the
    listed `items` at their relative `path` (with their own `mode`); a listed key the Secret lacks fails the pod."""
    chosen: list[dict[str, Any]] = [{"key": k, "path": k} for k in sorted(data)] if items is None else items
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    for item in chosen:
        if item["key"] not in data:
            raise RuntimeError(f"secret key {item['key']!r} not found")
        target = (dest / item["path"]).resolve()
        if item["path"].startswith("/") or ".." in Path(item["path"]).parts or not target.is_relative_to(dest):
            raise RuntimeError(f"secret item path {item['path']!r} must be relative, without '..'")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data[item["key"]])
        os.chmod(target, item.get("mode", default_mode))


class PodRun:
    """One pod's local execution: volumes, the process, and its status reports."""

    def __init__(self, kubelet: LocalKubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.meta: dict[str, Any] = pod["metadata"]
        self.pod_spec: dict[str, Any] = pod["spec"]
        (self.container,) = self.pod_spec["containers"]
        self.dir = kubelet.state_dir / "pods" / self.meta["uid"]
        self.termination = self.dir / "termination-log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _patch(self, status: dict[str, Any]) -> None:
        self.kubelet.core.patch_namespaced_pod_status(self.meta["name"], self.meta["namespace"], {"status": status})

    def _volume_paths(self) -> dict[str, Path]:
        paths = {}
        for vol in self.pod_spec.get("volumes") or []:
            if "emptyDir" in vol:
                paths[vol["name"]] = self.dir / "volumes" / vol["name"]
                paths[vol["name"]].mkdir(parents=True, exist_ok=True)
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                paths[vol["name"]] = self.kubelet.claim_path(self.meta["namespace"], claim)
            elif "secret" in vol:
                source = vol["secret"]
                data = self.kubelet.secret_data(self.meta["namespace"], source["secretName"], source.get("optional"))
                paths[vol["name"]] = self.dir / "volumes" / vol["name"]
                write_secret_volume(paths[vol["name"]], data, source.get("items"), source.get("defaultMode", 0o644))
            else:
                raise RuntimeError(f"volume {vol['name']}: only emptyDir, persistentVolumeClaim and secret run locally")
        return paths

    def spec(self) -> dict[str, Any]:
        """What podexec needs: mounts, command, env and working dir of the (single) container."""
        c = self.container
        volumes = self._volume_paths()
        mounts = [
            (str(volumes[m["name"]]), m["mountPath"], bool(m.get("readOnly"))) for m in c.get("volumeMounts") or []
        ]
        self.termination.touch()
        mounts.append((str(self.termination), c.get("terminationMessagePath") or "/dev/termination-log", False))
        for _, target, _ in mounts:
            if not target.startswith(POD_ROOT + "/"):
                raise RuntimeError(f"{target} is outside {POD_ROOT}, the only place the sandbox mounts into")
        env = {"PATH": self.kubelet.path, "HOSTNAME": self.meta["name"], **self.kubelet.node_env}
        env.update({e["name"]: e.get("value") or "" for e in c.get("env") or []})
        command = [*(c.get("command") or []), *(c.get("args") or [])]
        return {"mounts": mounts, "command": command, "env": env, "workingDir": c.get("workingDir")}

    def run(self) -> None:
        """Start, wait, report. Any error before the start fails the pod with the reason."""
        c = self.container
        started = _now()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            spec_file = self.dir / "spec.json"
            spec_file.write_text(json.dumps(self.spec()))
            argv = ["unshare", "--mount", "--propagation", "private", "--"]
            argv += [sys.executable, "-m", "bmfleet.sandbox.podexec", str(spec_file)]
            with (self.dir / "log").open("wb") as out:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            running = {"running": {"startedAt": started}}
            self._patch(
                {
                    "phase": "Running",
                    "startTime": started,
                    "conditions": _conditions(True),
                    "containerStatuses": [_container(c, running, ready=True)],
                }
            )
            t0 = time.time()
            code = self.proc.wait()
            self.kubelet.record_run(self.meta, t0, time.time(), code)
            self.kubelet.publish_log(self.meta, c["name"], self.dir / "log")
            message = self._message(code)
        except Exception as exc:  # a pod the sandbox cannot run fails with the reason, as a kubelet's would
            code, message = 128, f"sandbox kubelet: {exc}"[:TERMINATION_LIMIT]
        reason = "Completed" if code == 0 else "Error"
        terminated = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "message": message,
                "startedAt": started,
                "finishedAt": _now(),
            }
        }
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": _conditions(False, "PodCompleted" if code == 0 else "PodFailed"),
            "containerStatuses": [_container(c, terminated, ready=False)],
        }
        try:
            self._patch(status)
        except client.ApiException as exc:
            log.info("pod %s gone before its result was reported: %s", self.meta["name"], exc.reason)

    def _message(self, code: int) -> str:
        text = self.termination.read_text(errors="replace") if self.termination.exists() else ""
        if not text and code != 0 and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = (self.dir / "log").read_text(errors="replace").splitlines()[-80:]
            text = "\n".join(lines)
        return text[-TERMINATION_LIMIT:]

    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


class LocalKubelet:
    """Watches bound pods and runs the ones that ask for it."""

    def __init__(self, kubeconfig: Path, state_dir: Path) -> None:
        self.api = api_client_for(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.state_dir = state_dir
        self.runs: dict[str, PodRun] = {}
        self._runs_lock = threading.Lock()
        state_dir.mkdir(parents=True, exist_ok=True)
        venv_bin = str(Path(sys.executable).parent)
        self.path = os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")])
        # What a worker image would carry (where TPU-MLIR lives, the cache root): BMFLEET_* from this host.
        self.node_env = {k: v for k, v in os.environ.items() if k.startswith("BMFLEET_")}

    def _plain(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return out

    def record_run(self, meta: dict[str, Any], started: float, ended: float, code: int) -> None:
        """Append one line to runs.jsonl: exact process times (pod status only has whole seconds), so a
        benchmark can tell the steps' own time from the pipeline's overhead."""
        line = {"namespace": meta["namespace"], "pod": meta["name"], "labels": meta.get("labels") or {},
                "start": started, "end": ended, "exitCode": code}  # fmt: skip
        with self._runs_lock, (self.state_dir / RUNS_FILE).open("a") as f:
            f.write(json.dumps(line) + "\n")

    def _log_file(self, uid: str) -> Path:
        return self.state_dir / "containers" / f"{uid}.log"

    def publish_log(self, meta: dict[str, Any], container: str, output: Path) -> None:
        """Keep a finished container's output (outside its run dir, which goes) and point a kwok Logs object
        owned by the pod at it. Logs are a convenience: failing here never fails the pod."""
        path = self._log_file(meta["uid"])
        try:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(cri_log(output.read_bytes(), datetime.now(UTC)))
            owner = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
            body = {
                "apiVersion": "/".join(KWOK),
                "kind": "Logs",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "ownerReferences": [owner]},
                "spec": {"logs": [{"containers": [container], "logsFile": str(path)}]},
            }
            custom = client.CustomObjectsApi(self.api)
            custom.create_namespaced_custom_object(*KWOK, meta["namespace"], "logs", body)
        except (OSError, client.ApiException) as exc:
            log.info("no logs for pod %s: %s", meta["name"], exc)

    def ensure_logs_crd(self) -> None:
        """kwok watches Logs objects once their CRD exists (it retries until then)."""
        try:
            client.ApiextensionsV1Api(self.api).create_custom_resource_definition(LOGS_CRD)  # type: ignore[arg-type]
        except client.ApiException as exc:
            if exc.status != 409:
                raise

    def claim_path(self, namespace: str, claim: str) -> Path:
        """Host directory of the PV a claim is bound to (hostPath or local PVs only)."""
        pvc = self._plain(self.core.read_namespaced_persistent_volume_claim(claim, namespace))
        volume = pvc["spec"].get("volumeName")
        if not volume:
            raise RuntimeError(f"claim {claim} is not bound")
        pv = self._plain(self.core.read_persistent_volume(volume))["spec"]
        path = (pv.get("hostPath") or pv.get("local") or {}).get("path")
        if not path:
            raise RuntimeError(f"PV {volume} is neither hostPath nor local")
        return Path(path)

    def secret_data(self, namespace: str, name: str, optional: bool | None) -> dict[str, bytes]:
        """A Secret's decoded data (empty for a missing optional Secret, as a kubelet mounts it)."""
        try:
            secret = self._plain(self.core.read_namespaced_secret(name, namespace))
        except client.ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise RuntimeError(f"secret {name!r}: {exc.reason}") from None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def handle(self, obj: Any) -> None:
        """Start a run for a newly bound annotated pod; kill the run of a pod being deleted."""
        pod = self._plain(obj)
        meta = pod["metadata"]
        if (meta.get("annotations") or {}).get(EXECUTE_ANNOTATION) != "true" or not pod["spec"].get("nodeName"):
            return
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            if uid in self.runs:
                self.runs.pop(uid).kill()
            return
        if uid in self.runs or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            return
        run = self.runs[uid] = PodRun(self, pod)
        threading.Thread(target=run.run, name=f"pod-{meta['name']}", daemon=True).start()

    def serve(self) -> None:
        """Watch forever (each watch lasts a few minutes, then resumes); clean up finished runs between."""
        while True:
            w = watch.Watch()
            pods = self.core.list_pod_for_all_namespaces
            for event in w.stream(pods, field_selector="spec.nodeName!=", timeout_seconds=300):
                raw: dict[str, Any] = dict(event or {})
                if raw.get("type") in ("ADDED", "MODIFIED"):
                    self.handle(raw["object"])
                elif raw.get("type") == "DELETED":  # its Logs object goes with it (owner reference)
                    self._log_file(self._plain(raw["object"])["metadata"]["uid"]).unlink(missing_ok=True)
            for uid in [u for u, r in self.runs.items() if r.finished()]:
                shutil.rmtree(self.runs.pop(uid).dir, ignore_errors=True)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description="sandbox kubelet: runs annotated pods as local processes")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubelet = LocalKubelet(args.kubeconfig, args.state_dir)
    kubelet.ensure_logs_crd()
    kubelet.serve()


if __name__ == "__main__":
    main()
