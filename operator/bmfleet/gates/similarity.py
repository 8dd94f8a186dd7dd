"""Per-output similarity of INT8 outputs to the FP32 reference, computed as TPU-MLIR's tolerance check does,
so a bmfleet gate and `model_deploy --tolerance cos,euclid` agree on the same tensors.

Reference: TPU-MLIR 1.30.2 `python/numpy_helper/tensor_compare.py`, `TensorCompare.compare()` (called by
`npz_compare.py`, i.e. `npz_tool.py compare`, which `model_deploy --tolerance` runs), whole tensor
(`per_axis_compare=-1`), target = INT8, reference = FP32:
  1. sizes differ -> NOT_MATCH (here: GateInputError); `np.array_equal` -> EQUAL;
     `np.allclose(target, ref, rtol=1e-3, atol=1e-8, equal_nan=True)` -> CLOSE. EQUAL and CLOSE pass and
     npz_compare reports them as cosine = euclid = 1.0 (`TensorCompareStats.save_result`).
  2. otherwise NaN -> 0 and +-inf -> +-10000, then in float32:
     cosine = dot(a, b) / (|a| |b|), or 0.0 when either tensor is all zeros;
     euclidean similarity = 1 - |a - b| / (|(a + b) / 2| + 1e-7), or 0.0 if either norm overflows.
     (Not 1 - |a-b| / (|a| + |b|): the denominator is the norm of the mean tensor.)
  3. a tensor passes iff cosine > tol_cos and euclid > tol_euclid (strict), `--tolerance 0.85,0.45` in
     TPU-MLIR's INT8 example.
Deviations: inputs are cast to float32 first (TPU-MLIR keeps int8 tensors int8 and demands equality; gate
outputs are dequantized), and the raw distance |a - b| is reported as well, for an absolute bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from bmfleet.gates.errors import GateInputError

F32 = npt.NDArray[np.float32]


class TensorSimilarity(BaseModel):
    """One INT8 tensor against its FP32 reference."""

    status: Literal["equal", "close", "compared"] = Field(description="TPU-MLIR's EQUAL, CLOSE or similarity.")
    cosine: float
    euclidean_similarity: float
    euclidean_distance: float = Field(description="|int8 - fp32| (after NaN/inf replacement).")


class Histogram(BaseModel):
    """Counts per bin over shared edges (len(edges) = len(counts) + 1); empty when nothing was finite."""

    edges: list[float]
    series: dict[str, list[int]]


class OutputSimilarity(BaseModel):
    """One model output over all samples: per-sample similarities and the worst of them (what gates use)."""

    name: str
    shape: list[int]
    samples: int
    cosine: list[float]
    euclidean_similarity: list[float]
    euclidean_distance: list[float]
    min_cosine: float
    min_euclidean_similarity: float
    max_euclidean_distance: float
    values: Histogram = Field(description="Element values, series 'fp32' and 'int8'.")
    errors: Histogram = Field(description="Element errors int8 - fp32, series 'error'.")


def _sanitize(x: F32) -> F32:
    x = x.copy()
    x[np.isnan(x)] = 0.0
    x[np.isposinf(x)] = 10000.0
    x[np.isneginf(x)] = -10000.0
    return x


def _as_f32(name: str, v: npt.ArrayLike) -> F32:
    try:
        return np.asarray(v, dtype=np.float32).ravel()
    except (TypeError, ValueError) as e:
        raise GateInputError(f"{name}: not a numeric tensor ({e})") from e


def compare_tensor(int8: npt.ArrayLike, fp32: npt.ArrayLike, name: str = "tensor") -> TensorSimilarity:
    """TPU-MLIR's comparison of one tensor (see the module docstring). Raises GateInputError on a size
    mismatch."""
    a, b = _as_f32(f"{name} (int8)", int8), _as_f32(f"{name} (fp32)", fp32)
    if a.size != b.size:
        raise GateInputError(f"{name}: INT8 has {a.size} elements, FP32 has {b.size}")
    if np.array_equal(a, b):
        return TensorSimilarity(status="equal", cosine=1.0, euclidean_similarity=1.0, euclidean_distance=0.0)
    close = bool(np.allclose(a, b, rtol=1e-3, atol=1e-8, equal_nan=True))
    a, b = _sanitize(a), _sanitize(b)
    with np.errstate(over="ignore", invalid="ignore"):
        ed = math.sqrt(np.sum(np.power(a - b, 2)))
        if close:
            return TensorSimilarity(status="close", cosine=1.0, euclidean_similarity=1.0, euclidean_distance=ed)
        # TPU-MLIR's test, verbatim: the second term counts non-zeros, which is non-zero iff b has one.
        if np.sum(np.abs(a)) != 0 and np.sum(np.abs(b) != 0):
            cosine = float(1 - (1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
        else:
            cosine = 0.0
        sr = math.sqrt(np.sum(np.power((a + b) / 2, 2))) + 1e-7
    euclid = 0.0 if math.isinf(ed) or math.isinf(sr) else 1 - ed / sr
    return TensorSimilarity(status="compared", cosine=cosine, euclidean_similarity=euclid, euclidean_distance=ed)


def _histogram(series: dict[str, F32], bins: int) -> Histogram:
    finite = {k: v[np.isfinite(v)] for k, v in series.items()}
    pooled = np.concatenate(list(finite.values()))
    if pooled.size == 0:
        return Histogram(edges=[], series={k: [] for k in series})
    lo, hi = float(pooled.min()), float(pooled.max())
    edges = np.histogram_bin_edges(pooled.astype(np.float64), bins=bins, range=(lo, hi) if hi > lo else None)
    return Histogram(
        edges=[float(e) for e in edges],
        series={k: [int(c) for c in np.histogram(v, bins=edges)[0]] for k, v in finite.items()},
    )


def compare_outputs(
    int8: Sequence[Mapping[str, npt.ArrayLike]], fp32: Sequence[Mapping[str, npt.ArrayLike]], bins: int = 50
) -> list[OutputSimilarity]:
    """Compare every output of every sample (one mapping output name -> tensor per sample, as one npz per
    inference holds them). Outputs are listed in the FP32 order. Raises GateInputError."""
    if not fp32 or len(int8) != len(fp32):
        raise GateInputError(f"similarity: need the same non-zero number of samples, got {len(int8)} and {len(fp32)}")
    names = list(fp32[0])
    for i, (q, r) in enumerate(zip(int8, fp32, strict=True)):
        if set(q) != set(names) or set(r) != set(names):
            missing = sorted(set(names) ^ set(q)) or sorted(set(names) ^ set(r))
            raise GateInputError(f"similarity: sample {i} does not have the same outputs ({', '.join(missing)})")
    out = []
    for name in names:
        pairs = list(zip(int8, fp32, strict=True))
        sims = [compare_tensor(q[name], r[name], f"output {name!r} sample {i}") for i, (q, r) in enumerate(pairs)]
        qs = [_as_f32(name, q[name]) for q in int8]
        rs = [_as_f32(name, r[name]) for r in fp32]
        q_all, r_all = np.concatenate(qs), np.concatenate(rs)
        with np.errstate(invalid="ignore", over="ignore"):
            err = q_all - r_all
        out.append(
            OutputSimilarity(
                name=name,
                shape=list(np.shape(fp32[0][name])),
                samples=len(sims),
                cosine=[s.cosine for s in sims],
                euclidean_similarity=[s.euclidean_similarity for s in sims],
                euclidean_distance=[s.euclidean_distance for s in sims],
                min_cosine=min(s.cosine for s in sims),
                min_euclidean_similarity=min(s.euclidean_similarity for s in sims),
                max_euclidean_distance=max(s.euclidean_distance for s in sims),
                values=_histogram({"fp32": r_all, "int8": q_all}, bins),
                errors=_histogram({"error": err}, bins),
            )
        )
    return out
