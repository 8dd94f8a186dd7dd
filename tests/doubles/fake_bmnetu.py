"""TEST DOUBLE of the SOPHON SDK's `bmnetu` (which is not public): used only by the tests, never shipped.

It checks its command line the way the real tool's gflags parser and argument checks would (flags from the
seed's table plus `-max_n` and `-target`; `-flag=value` syntax; unknown flags, malformed values and missing
required flags fail with exit 1), checks that -model and -weight exist, and on success writes a small
placeholder file as `<outdir>/compilation.bmodel` (not a real bmodel: it starts with `FAKE-BMODEL`).

`FAKE_BMNETU_FAIL` makes it fail after a plausible log: `unsupported`, `compare`, `oom` (killed by
SIGKILL, as by the OOM killer), `badalloc`, `crash` (SIGSEGV after a glog fatal line). The failure lines
are modelled on glog/bmcompiler-style output; they were not captured from a real bmnetu.
`FAKE_BMNETU_ARGS_OUT=<file>` records the argv it received as JSON, for assertions.

Run it as `python fake_bmnetu.py -model=... ...` (the tests wrap it in a small executable script).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

VERSION = "0.0.0-fake"
BOOL_VALUES = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "t": True, "f": False}
SHAPES_RE = re.compile(r"^\[[1-9][0-9]*(?:,[1-9][0-9]*)*\](?:,\[[1-9][0-9]*(?:,[1-9][0-9]*)*\])*$")
FLAGS = {
    "model": "string",
    "weight": "string",
    "shapes": "string",
    "net_name": "string",
    "opt": "int32",
    "dyn": "bool",
    "outdir": "string",
    "prec": "string",
    "cmp": "bool",
    "mode": "string",
    "max_n": "int32",
    "target": "string",
}
REQUIRED = ("model", "weight", "outdir")


def die(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def parse(argv: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for arg in argv:
        match = re.fullmatch(r"--?([A-Za-z_]+)(?:=(.*))?", arg)
        if not match:
            die(f"ERROR: unexpected positional argument '{arg}'")
        assert match is not None
        name, raw = match.group(1), match.group(2)
        if name not in FLAGS:
            die(f"ERROR: unknown command line flag '{name}'")
        kind = FLAGS[name]
        if raw is None:
            if kind != "bool":
                die(f"ERROR: flag '{name}' is missing its argument; flag description: {name}")
            raw = "true"
        if name in values:
            die(f"ERROR: flag '{name}' given twice")
        if kind == "bool":
            if raw.lower() not in BOOL_VALUES:
                die(f"ERROR: illegal value '{raw}' specified for bool flag '{name}'")
            values[name] = BOOL_VALUES[raw.lower()]
        elif kind == "int32":
            if not re.fullmatch(r"-?[0-9]+", raw):
                die(f"ERROR: illegal value '{raw}' specified for int32 flag '{name}'")
            values[name] = int(raw)
        else:
            values[name] = raw
    return values


def check(values: dict[str, object]) -> None:
    for name in REQUIRED:
        if not values.get(name):
            die(f"ERROR: flag '{name}' is missing: it is required")
    for name in ("model", "weight"):
        if not Path(str(values[name])).is_file():
            die(f"F0000 bmnetu.cpp:88] Check failed: file {values[name]} does not exist: No such file or directory")
    if "shapes" in values and not SHAPES_RE.match(str(values["shapes"])):
        die(f"F0000 bmnetu.cpp:102] invalid shape string '{values['shapes']}', expect [x,x,x,x],[x,x]")
    if values.get("opt", 2) not in (0, 1, 2):
        die(f"F0000 bmnetu.cpp:110] invalid -opt={values['opt']}: expect 0, 1 or 2")
    if values.get("prec", "FP32") not in ("FP32", "INT8"):
        die(f"F0000 bmnetu.cpp:115] invalid -prec={values['prec']}: expect FP32 or INT8")
    if values.get("mode", "compile") not in ("compile", "GenUmodel"):
        die(f"F0000 bmnetu.cpp:120] invalid -mode={values['mode']}: expect compile or GenUmodel")
    if values.get("target", "BM1684") != "BM1684":
        die(f"F0000 bmnetu.cpp:125] invalid -target={values['target']}: this bmnetu supports BM1684")
    max_n = values.get("max_n")
    if max_n is not None and (not isinstance(max_n, int) or max_n < 1):
        die(f"F0000 bmnetu.cpp:130] invalid -max_n={max_n}")


def fail(kind: str, net: str) -> None:
    print(f"I0000 bmcompiler_net.cpp:210] compiling net {net}", flush=True)
    if kind == "unsupported":
        die("F0000 bmcompiler_layer.cpp:412] not supported layer type: ROIAlign (layer roi_align_1)")
    elif kind == "compare":
        print("I0000 bmcompiler_cmp.cpp:95] cmp layer conv1 ... pass", flush=True)
        die(
            "E0000 bmcompiler_cmp.cpp:131] cmp layer fc7 mismatch: max diff 0.31 > 0.01\n"
            "F0000 bmcompiler_cmp.cpp:140] compare failed: net result is different from the reference"
        )
    elif kind == "badalloc":
        die("terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc", 134)
    elif kind == "oom":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "crash":
        print("F0000 bmcompiler_if.cpp:77] Check failed: tensor_id < tensor_num", flush=True)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    die(f"fake_bmnetu: unknown FAKE_BMNETU_FAIL={kind!r}", 2)


def main(argv: list[str]) -> None:
    if argv in (["--version"], ["-version"]):
        print(f"bmnetu version {VERSION}")
        return
    values = parse(argv)
    if out := os.environ.get("FAKE_BMNETU_ARGS_OUT"):
        Path(out).write_text(json.dumps(argv))
    check(values)
    net = str(values.get("net_name") or Path(str(values["model"])).name.split("_")[0])
    if kind := os.environ.get("FAKE_BMNETU_FAIL"):
        fail(kind, net)
    outdir = Path(str(values["outdir"]))
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"I0000 bmcompiler_net.cpp:210] compiling net {net} shapes={values.get('shapes', '<prototxt>')}")
    (outdir / "compilation.bmodel").write_bytes(b"FAKE-BMODEL\0" + json.dumps(argv).encode())
    print(f"I0000 bmcompiler_net.cpp:480] save bmodel to {outdir / 'compilation.bmodel'}")


if __name__ == "__main__":
    main(sys.argv[1:])
