"""`bmfleet build -f build.yaml --local`: the same steps as the operator's Jobs, as local processes.

Each stage runs `bmfleet worker compile` with the very arguments its Job would get (only the output, result
and store paths are local), stages in parallel; then `bmfleet worker combine`. A local store directory holds
the blobs and the compile cache, so a rerun with the same inputs compiles nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from bmfleet import __version__
from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.digests import sha256_tree
from bmfleet.api.shapes import StageShapes, format_shapes
from bmfleet.pipeline.combine import combine_inputs, output_name
from bmfleet.pipeline.gate import gate_args
from bmfleet.pipeline.jobs import compile_args, compile_cache_key
from bmfleet.pipeline.resolve import pin, unpinned
from bmfleet.pipeline.validate import parse_spec, resolve_stages
from bmfleet.store.fs import FileStore
from bmfleet.worker.inputs import InputError, resolve

POLL = 0.2


@dataclass
class Task:
    """One stage (or the combine) as a local process."""

    index: int
    label: str
    argv: list[str]
    result: Path
    log: Path
    state: str = "Pending"
    started: float | None = None
    ended: float | None = None
    record: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        self.state, self.started = "Running", time.monotonic()

    def poll(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        self.ended = time.monotonic()
        try:
            self.record = json.loads(self.result.read_text())
        except (OSError, ValueError):
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
            self.record = {"state": "Failed", "reason": "WorkerCrash", "message": "\n".join(tail)}
        self.state = "Succeeded" if self.proc.returncode == 0 else "Failed"

    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


def _worker(step: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "bmfleet.cli.main", "worker", step, *args]


class Progress:
    """A table redrawn in place on a terminal, or the table again on each state change elsewhere (CI logs)."""

    def __init__(self, out: IO[str]) -> None:
        self.out, self.tty = out, out.isatty()
        self.drawn, self.last = 0, ""

    def show(self, tasks: list[Task]) -> None:
        lines = [f"  {t.label:<28}{t.state:<11}{t.seconds():6.1f}s  {t.record.get('reason', '')}" for t in tasks]
        key = "\n".join(lines) if self.tty else ",".join(t.state for t in tasks)
        if key == self.last:
            return
        if self.tty and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")  # back to the table's first line, clear below
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn, self.last = len(lines), key


def _run(tasks: list[Task], parallel: int, progress: Progress) -> None:
    pending = [t for t in tasks if t.state == "Pending"]
    while True:
        running = [t for t in tasks if t.state == "Running"]
        for t in running:
            t.poll()
        while pending and sum(t.state == "Running" for t in tasks) < parallel:
            pending.pop(0).start()
        progress.show(tasks)
        if not pending and not any(t.state == "Running" for t in tasks):
            return
        time.sleep(POLL)


def run_local(manifest: Path, store_dir: Path, parallel: int, out: IO[str] = sys.stdout) -> int:
    """Build one BModelBuild manifest locally; returns the exit code."""
    doc = yaml.safe_load(manifest.read_text())
    name = doc.get("metadata", {}).get("name", manifest.stem)
    spec, problems = parse_spec(doc.get("spec") or {})
    stages: list[StageShapes] = []
    if spec is not None:
        stages, problems = resolve_stages(spec)
    if spec is None or problems:
        for p in problems:
            out.write(f"invalid: {p}\n")
        return 2
    store_dir = store_dir.resolve()
    store, fs = f"file://{store_dir}", FileStore(store_dir)
    work = store_dir / "work" / name
    image = f"local bmfleet {__version__}"
    out.write(f"{name}: {len(stages)} stage(s), {spec.toolchain.name} {spec.chip} {spec.precision}\n")
    try:  # the resolve step, in process: the cache keys on the inputs' content, as in a cluster
        spec = pin(spec, {n: sha256_tree(resolve(uri, work)) for n, uri in unpinned(spec).items()})
    except InputError as exc:
        out.write(f"invalid: {exc}\n")
        return 2
    tasks, keys = [], {}
    for i, shapes in enumerate(stages):
        key = compile_cache_key(f"local:{store}", spec, shapes, image)
        assert key is not None  # every input is pinned above
        args = compile_args(spec, shapes, str(work / f"stage-{i}"), str(work / f"stage-{i}.json"), store)
        task = Task(
            i,
            f"stage {i} {format_shapes(shapes)}",
            _worker("compile", args),
            work / f"stage-{i}.json",
            work / f"stage-{i}.log",
        )
        cached = fs.lookup(key)
        if cached is not None:
            task.state, task.record = "Cached", {"uri": f"{store}/{cached.key}", "digest": f"sha256:{cached.digest}"}
        tasks.append(task)
        keys[i] = key
    progress = Progress(out)
    t0 = time.monotonic()
    _run(tasks, parallel, progress)
    failed = [t for t in tasks if t.state == "Failed"]
    for t in failed:
        out.write(f"{t.label}: {t.record.get('reason')}: {t.record.get('message')}\n")
    if failed:
        return 1
    for t in tasks:
        if t.state == "Succeeded":
            fs.remember(keys[t.index], str(t.record["digest"]).removeprefix("sha256:"))
    entries = [{"index": t.index, "inputs": stages[t.index], "uri": t.record["uri"]} for t in tasks]
    result = work / "combine.json"
    combine = Task(-1, "combine", _worker("combine", [
        f"--inputs={','.join(combine_inputs(entries))}", f"--store={store}", f"--name={output_name(spec)}",
        f"--outdir={work / 'combined'}", f"--result={result}"]), result, work / "combine.log")  # fmt: skip
    _run([*tasks, combine], 1, progress)
    if combine.state != "Succeeded":
        out.write(f"combine: {combine.record.get('reason')}: {combine.record.get('message')}\n")
        return 1
    path = work / "combined" / output_name(spec)
    out.write(f"combined: {path} ({combine.record['digest']}, {combine.record['size']} bytes, "
              f"{combine.record['stages']} stages) in {time.monotonic() - t0:.1f}s\n")  # fmt: skip
    return _gate(spec, str(combine.record["uri"]), store, work, progress, out) if spec.gates is not None else 0


def _gate(spec: BModelBuildSpec, combined: str, store: str, work: Path, progress: Progress, out: IO[str]) -> int:
    """The gate step, as the gate Job runs it: exit 0 when every check passed, 1 when a gate failed."""
    result = work / "gate.json"
    args = gate_args(spec, combined, str(result), store, str(work / "gate"))
    task = Task(-2, "gates", _worker("gate", args), result, work / "gate.log")
    _run([task], 1, progress)
    record = task.record
    if task.state != "Succeeded":
        out.write(f"gates: {record.get('reason')}: {record.get('message')}\n")
        return 2 if record.get("reason") == "BadGateInput" else 1
    for c in record.get("checks", []):
        base = f" (FP32 {c['baseline']}, delta {c.get('deltaPp')} pp)" if c.get("baseline") is not None else ""
        mark = "ok  " if c["passed"] else "FAIL"
        out.write(f"  {mark} {c['gate']}: {c['metric']} = {c.get('value')}{base}, {c['rule']} {c['threshold']}\n")
    out.write(f"gates {'passed' if record.get('passed') else 'FAILED'}: report {record.get('reportUri')}\n")
    return 0 if record.get("passed") else 1
