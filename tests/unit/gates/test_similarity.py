"""Tensor similarity as TPU-MLIR's tolerance check computes it: hand-checked values, histograms, input errors,
and (where the TPU-MLIR environment exists) agreement with TPU-MLIR's own tensor_compare.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bmfleet.gates.errors import GateInputError
from bmfleet.gates.similarity import compare_outputs, compare_tensor

ROOT = Path(__file__).resolve().parents[3]


def test_orthogonal_vectors() -> None:
    """cos = 0; euclid = 1 - |(1,-1)| / |(.5,.5)| = 1 - sqrt(2) / (sqrt(.5) + 1e-7) ~ -1."""
    s = compare_tensor([1, 0], [0, 1])
    assert s.status == "compared" and s.cosine == 0.0
    assert s.euclidean_similarity == pytest.approx(1 - math.sqrt(2) / (math.sqrt(0.5) + 1e-7), rel=1e-6)
    assert s.euclidean_distance == pytest.approx(math.sqrt(2), rel=1e-6)


def test_scaled_copy_has_cosine_one_but_lower_euclidean_similarity() -> None:
    """b = 2a: cos 1; euclid = 1 - |a| / |1.5 a| = 1/3 (the denominator is the mean tensor's norm)."""
    a = np.array([3.0, 4.0, 0.0])
    s = compare_tensor(a, 2 * a)
    assert s.cosine == pytest.approx(1.0, abs=1e-6)
    assert s.euclidean_similarity == pytest.approx(1 / 3, abs=1e-6)
    assert s.euclidean_distance == pytest.approx(5.0, abs=1e-6)


def test_equal_and_close_report_one_as_npz_compare_does() -> None:
    assert compare_tensor(np.zeros(4), np.zeros(4)).model_dump() == {
        "status": "equal",
        "cosine": 1.0,
        "euclidean_similarity": 1.0,
        "euclidean_distance": 0.0,
    }
    close = compare_tensor([1.0, 2.0, 1000.0], [1.0, 2.0, 1000.5])  # within rtol 1e-3
    assert (close.status, close.cosine, close.euclidean_similarity) == ("close", 1.0, 1.0)
    assert close.euclidean_distance == pytest.approx(0.5)


def test_all_zero_int8_output_has_cosine_zero() -> None:
    s = compare_tensor(np.zeros(3), [1.0, 2.0, 3.0])
    assert s.cosine == 0.0 and s.euclidean_similarity == pytest.approx(-1.0, abs=1e-6)


def test_nan_and_inf_are_replaced_as_tpu_mlir_does() -> None:
    """NaN -> 0 and inf -> 10000 before comparing: [nan, inf] vs [0, 10000] is then identical."""
    s = compare_tensor([np.nan, np.inf, 1.0], [0.0, 10000.0, 2.0])
    expected = compare_tensor([0.0, 10000.0, 1.0], [0.0, 10000.0, 2.0])
    assert s.status == "compared" and s == expected


def test_size_mismatch_is_named() -> None:
    with pytest.raises(GateInputError, match="logits: INT8 has 3 elements, FP32 has 4"):
        compare_tensor([1, 2, 3], [1, 2, 3, 4], name="logits")


def test_outputs_over_samples_take_the_worst_sample() -> None:
    rng = np.random.default_rng(0)
    ref = [{"boxes": rng.normal(size=(2, 8)), "scores": rng.normal(size=10)} for _ in range(3)]
    noise = (0.01, 0.5, 0.05)
    q = [{k: v + rng.normal(scale=n, size=v.shape) for k, v in r.items()} for r, n in zip(ref, noise, strict=True)]
    out = compare_outputs(q, ref, bins=10)
    assert [o.name for o in out] == ["boxes", "scores"]
    boxes = out[0]
    assert boxes.shape == [2, 8] and boxes.samples == 3
    assert boxes.min_cosine == min(boxes.cosine) == boxes.cosine[1]
    assert boxes.max_euclidean_distance == max(boxes.euclidean_distance) == boxes.euclidean_distance[1]
    assert len(boxes.values.edges) == 11 and sum(boxes.values.series["fp32"]) == 48
    assert sum(boxes.values.series["int8"]) == 48 and sum(boxes.errors.series["error"]) == 48


def test_histograms_skip_non_finite_values() -> None:
    out = compare_outputs([{"o": np.array([np.nan, 1.0, 2.0])}], [{"o": np.array([1.0, 1.0, 3.0])}], bins=4)
    assert sum(out[0].values.series["int8"]) == 2 and sum(out[0].values.series["fp32"]) == 3
    const = compare_outputs([{"o": np.ones(5)}], [{"o": np.ones(5)}], bins=4)[0]
    assert sum(const.values.series["fp32"]) == 5  # one value only: numpy's unit-wide range


@pytest.mark.parametrize(
    ("int8", "fp32", "message"),
    [
        ([], [], "need the same non-zero number of samples"),
        ([{"a": [1]}], [{"a": [1]}, {"a": [1]}], "got 1 and 2"),
        ([{"a": [1], "b": [2]}], [{"a": [1]}], "sample 0 does not have the same outputs \\(b\\)"),
        ([{"a": [1, 2]}], [{"a": [1]}], "output 'a' sample 0: INT8 has 2 elements"),
        ([{"a": ["x"]}], [{"a": [1]}], "not a numeric tensor"),
    ],
)
def test_bad_outputs_are_named(int8: list[dict[str, object]], fp32: list[dict[str, object]], message: str) -> None:
    with pytest.raises(GateInputError, match=message):
        compare_outputs(int8, fp32)  # type: ignore[arg-type]


def _tpu_mlir_python() -> Path | None:
    if env := os.environ.get("BMFLEET_TPU_MLIR_BIN"):
        return Path(env) / "python"
    cache = Path(os.environ.get("BMFLEET_CACHE", ROOT / ".cache"))
    found = sorted(cache.glob("tpu-mlir-*/venv/bin/python"))
    return found[-1] if found else None


TPU_MLIR_SCRIPT = """
import glob, importlib.util, json, sys
import numpy as np
path = glob.glob(sys.prefix + "/lib/python3*/site-packages/tpu_mlir/python/numpy_helper/tensor_compare.py")[0]
spec = importlib.util.spec_from_file_location("tensor_compare", path)
tc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tc)
cases = np.load(sys.argv[1])
out = {}
for name in sorted({k.rsplit("_", 1)[0] for k in cases.files}):
    r = tc.TensorCompare(3, 0.85, 0.45, float("-inf")).compare(cases[name + "_q"], cases[name + "_r"], 0)
    s = r[3]
    out[name] = [r[1], float(s.get("cosine", 1.0)), float(s.get("euclid", 1.0))]
print(json.dumps(out))
"""


@pytest.mark.toolchain
def test_agrees_with_tpu_mlir_tensor_compare(tmp_path: Path) -> None:
    """The same pairs through TPU-MLIR's TensorCompare.compare (its Python 3.10 environment)."""
    python = _tpu_mlir_python()
    if python is None or not python.exists():
        pytest.skip("TPU-MLIR environment not found (hack/setup-tpu-mlir.sh creates it; or set BMFLEET_TPU_MLIR_BIN)")
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(4, 3, 16)).astype(np.float32)
    cases = {
        "small_noise": (ref + rng.normal(scale=0.05, size=ref.shape), ref),
        "large_noise": (ref + rng.normal(scale=1.5, size=ref.shape), ref),
        "scaled": (1.7 * ref, ref),
        "negated": (-ref, ref),
        "zeros": (np.zeros_like(ref), ref),
        "equal": (ref, ref),
        "close": (ref * (1 + 1e-5), ref),
        "nan_inf": (np.where(ref > 1.5, np.inf, np.where(ref < -1.5, np.nan, ref)), ref),
        "quantised": (np.round(ref * 8) / 8, ref),
    }
    arrays = {f"{k}_q": np.asarray(q, dtype=np.float32) for k, (q, _) in cases.items()}
    arrays |= {f"{k}_r": np.asarray(r, dtype=np.float32) for k, (_, r) in cases.items()}
    np.savez(tmp_path / "cases.npz", **arrays)
    proc = subprocess.run(
        [str(python), "-c", TPU_MLIR_SCRIPT, str(tmp_path / "cases.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    status = {"EQUAL": "equal", "CLOSE": "close", "SIMILAR": "compared", "NOT_SIMLIAR": "compared"}
    assert {v[0] for v in theirs.values()} == {"EQUAL", "CLOSE", "SIMILAR", "NOT_SIMLIAR"}  # every path taken
    for name in cases:
        ours = compare_tensor(arrays[f"{name}_q"], arrays[f"{name}_r"], name)
        kind, cos, euc = theirs[name]
        assert ours.status == status[kind], name
        assert ours.cosine == pytest.approx(cos, abs=1e-6), name
        assert ours.euclidean_similarity == pytest.approx(euc, abs=1e-6), name
