"""Run a bmodel over many input batches in one process, on TPU-MLIR's simulator (cmodel) — what the gates
use as the device runtime when no BM1684 is present.

This file is executed by TPU-MLIR's own Python 3.10 (see `tpu_mlir.run_bmodel`), so it imports nothing from
bmfleet. It loads the model once (model_runner reloads it per call) and lets the runtime pick the stage that
matches each batch's input shape, so every stage of a combined bmodel is exercised.

    python bmrt_runner.py MODEL.bmodel IN_DIR OUT_DIR   # IN_DIR/*.npz -> OUT_DIR/*.npz (+ OUT_DIR/_timings.json)
"""

import json
import os
import sys
import time
from pathlib import Path

TIMINGS = "_timings.json"


# This folder holds bmfleet's own tpu_mlir.py, which would shadow the real package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(model_file: str, in_dir: str, out_dir: str) -> int:
    t0 = time.perf_counter()
    import importlib

    import numpy as np
    from tpu_mlir.python.tools import model_runner as mr  # type: ignore[import-not-found]

    chip = mr.get_chip_from_model(model_file)
    is_rvti = mr.get_kernel_mode_from_model(model_file) == "1"
    mr.link_cmodel_so(chip, is_rvti)
    mr.link_custom_so(chip)
    mr.link_bmlib_so(chip)
    runtime = importlib.import_module("pyruntime_bm")
    mr.bind_cmodel_so(chip, is_rvti)
    model = runtime.Model(model_file, 0, "")
    net = model.Net(model.networks[0])
    loaded = time.perf_counter()
    forward = 0.0
    batches = sorted(Path(in_dir).glob("*.npz"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in batches:
        with np.load(path) as data:
            feeds = {k: data[k] for k in data.files}
        shapes = []
        for i in net.inputs:
            x = feeds[i.name] if i.name in feeds else next(iter(feeds.values()))
            shapes.append(list(x.shape))
            i.data.reshape(-1)[: x.size] = mr.lowering(
                x, pdtype=i.dtype, pshape=x.shape, pzero_point=i.qzero_point, pscale=i.qscale
            ).flatten()
        f0 = time.perf_counter()
        out_shapes = net.forward_dynamic(shapes)
        forward += time.perf_counter() - f0
        outputs = {}
        for o, shape in zip(net.outputs, out_shapes, strict=True):
            raw = o.data
            if raw.dtype in (np.int8, np.uint8) and o.qscale != 0:
                value = (raw.astype(np.float32) - o.qzero_point) * np.float32(o.qscale)
            elif o.dtype == "bf16":
                value = mr.bf16_to_fp32(raw)
            else:
                value = np.array(raw, dtype=np.float32)
            outputs[o.name] = value.reshape(-1)[: int(np.prod(shape))].reshape(shape)
        np.savez(Path(out_dir) / path.name, **outputs)
    total = time.perf_counter() - t0
    timings = {"batches": len(batches), "load": loaded - t0, "forward": forward, "total": total}
    (Path(out_dir) / TIMINGS).write_text(json.dumps(timings))  # stdout is the runtime's chatter
    return 0


if __name__ == "__main__":
    code = main(*sys.argv[1:4])
    sys.stdout.flush()
    # The runtime can crash while the interpreter tears it down (munmap_chunk(): invalid pointer, seen with
    # large batches) after every output is written; skip the teardown.
    os._exit(code)
