"""Measurements for bench/rollout.py: process CPU and memory, Prometheus samples (API server, gateway), a watch of
device status, and the printed report."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bmfleet.cli.devenv import kubectl
from bmfleet.sandbox.controlplane import Sandbox

NS = "fleet"
MODEL = "det"


def proc_usage(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, RSS KiB, peak RSS KiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def prometheus(text: str, name: str) -> dict[str, float]:
    """Samples of one metric: {label string: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name) :]] = float(value)
    return out


def apiserver_requests(sandbox: Sandbox) -> dict[str, float]:
    """apiserver_request_total summed by (verb, resource[/subresource]), with the admin kubeconfig."""
    samples = prometheus(kubectl(sandbox, "get", "--raw", "/metrics"), "apiserver_request_total")
    out: dict[str, float] = {}
    for labels, value in samples.items():
        parts = {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in labels.strip("{}").split(",") if "=" in kv)}
        sub = f"/{parts['subresource']}" if parts.get("subresource") else ""
        key = f"{parts.get('verb', '?')} {parts.get('resource', '?')}{sub}"
        out[key] = out.get(key, 0.0) + value
    return out


class StatusWatch:
    """Per device: the active digest of MODEL, from one watch on EdgeDevices (what a controller would see)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom: Any = client.CustomObjectsApi(api)
        self.active: dict[str, str | None] = {}
        self.registered: set[str] = set()
        self._watch = watch.Watch()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                for ev in self._watch.stream(
                    self.custom.list_namespaced_custom_object, "bmfleet.io", "v1alpha1", NS, "edgedevices",
                    timeout_seconds=600,
                ):  # fmt: skip
                    obj, name = ev["object"], ev["object"]["metadata"]["name"]
                    status = obj.get("status") or {}
                    if status.get("credentials"):
                        self.registered.add(name)
                    m = next((m for m in status.get("models") or [] if m.get("name") == MODEL), {})
                    self.active[name] = m.get("activeDigest") if m.get("state") == "Active" else None
            except Exception:  # the sandbox stops under the watch at the end
                time.sleep(0.5)

    def count(self, names: list[str], digest: str) -> int:
        return sum(1 for n in names if self.active.get(n) == digest)


def gateway_metrics(admin_url: str) -> str:
    with urllib.request.urlopen(admin_url + "/metrics", timeout=60) as r:
        return str(r.read().decode())


def report(args: argparse.Namespace, data: bytes, wall: float, api0: dict[str, float], api1: dict[str, float],
           gwm0: str, gwm1: str, cpu0: tuple[float, int, int],
           cpu1: tuple[float, int, int]) -> dict[str, float]:  # fmt: skip
    def gw_total(text: str, name: str) -> float:
        return sum(prometheus(text, name).values())

    served = gw_total(gwm1, "bmfleet_gateway_blob_bytes_served_total") - gw_total(
        gwm0, "bmfleet_gateway_blob_bytes_served_total"
    )
    expected = len(data) * args.devices
    delta = {k: api1.get(k, 0) - api0.get(k, 0) for k in api1}
    ed = {k: v for k, v in sorted(delta.items()) if v and " edgedevices" in k}
    print(json.dumps({"devices": args.devices, "artifactBytes": len(data), "phases": args.phases,
                      "rolloutWallSeconds": round(wall, 1)}))  # fmt: skip
    print(f"rollout wall time:        {wall:.1f} s for {args.devices} devices ({'/'.join(map(str, args.phases))}%)")
    print(f"gateway CPU:              {cpu1[0] - cpu0[0]:.1f} s during the rollout; RSS {cpu1[1] / 1024:.0f} MiB "
          f"(peak {cpu1[2] / 1024:.0f} MiB)")  # fmt: skip
    print(f"bytes served:             {served:.0f} = {served / expected:.4f} x size x devices ({expected})")
    for name in ("requests", "status_reports", "status_writes", "status_batches", "api_requests"):
        before, after = gw_total(gwm0, f"bmfleet_gateway_{name}_total"), gw_total(gwm1, f"bmfleet_gateway_{name}_total")
        print(f"gateway {name + ':':<18}{after - before:.0f} (whole run {after:.0f})")
    writes = prometheus(gwm1, "bmfleet_gateway_status_writes_total")
    print(f"  status writes by result (whole run): {writes}")
    print(f"API requests (all):       {sum(delta.values()):.0f}; on edgedevices: {ed}")
    if args.via == "direct":
        print(f"  of which this script's spec.desired writes: {args.devices} (the rollout controller's job)")
    return {"devices": args.devices, "wall": wall, "gatewayCpu": cpu1[0] - cpu0[0], "gatewayRssMiB": cpu1[2] / 1024,
            "apiRequests": sum(delta.values()), "bytesRatio": served / expected}  # fmt: skip


def print_curve(rows: list[dict[str, float]]) -> None:
    """One line per fleet size, side by side: how each cost grows with the number of devices."""
    cols = [("devices", "devices", "{:.0f}"), ("wall", "wall s", "{:.1f}"), ("operatorCpu", "op CPU s", "{:.1f}"),
            ("operatorCores", "op cores", "{:.2f}"), ("operatorRssMiB", "op RSS MiB", "{:.0f}"),
            ("gatewayCpu", "gw CPU s", "{:.1f}"), ("gatewayRssMiB", "gw RSS MiB", "{:.0f}"),
            ("apiRequests", "API reqs", "{:.0f}"), ("bytesRatio", "bytes/(size*N)", "{:.4f}")]  # fmt: skip
    print("\nrollout curve")
    print("".join(f"{title:>15}" for _, title, _ in cols))
    for row in rows:
        print("".join(f"{fmt.format(row[key]) if key in row else '-':>15}" for key, _, fmt in cols))
