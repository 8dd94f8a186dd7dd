"""Report figures, drawn with matplotlib's object API on the Agg canvas (no pyplot: no global state, no
display, safe in a worker thread) and returned as PNG bytes for embedding."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from bmfleet.gates.detection import DetectionMetrics
from bmfleet.gates.errors import GateInputError
from bmfleet.gates.similarity import OutputSimilarity

INT8_COLOR, FP32_COLOR = "#d95f02", "#1b9e77"
MAX_BARS = 100  # beyond this (LVIS-sized label sets) the chart keeps the classes whose AP moved most


def _plain(text: str) -> str:
    """User text for matplotlib: a `$` would start mathtext and can fail the whole render."""
    return text.replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def per_class_ap(int8: DetectionMetrics, fp32: DetectionMetrics) -> bytes:
    """Horizontal grouped bars of AP@[.50:.95] per class (classes without ground truth left out)."""
    fp = {c.category_id: c for c in fp32.per_class}
    rows: list[tuple[str, float, float]] = [
        (c.name, c.ap or 0.0, fp[c.category_id].ap or 0.0)
        for c in int8.per_class
        if c.category_id in fp and (c.ap is not None or fp[c.category_id].ap is not None)
    ]
    title = "AP@[.50:.95] per class"
    if len(rows) > MAX_BARS:
        keep = set(sorted(range(len(rows)), key=lambda i: -abs(rows[i][1] - rows[i][2]))[:MAX_BARS])
        rows = [row for i, row in enumerate(rows) if i in keep]
        title += f" (the {MAX_BARS} classes with the largest INT8 - FP32 difference)"
    fig = Figure(figsize=(8, max(2.5, 0.28 * len(rows) + 1)))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r for _, _, r in rows], height=0.4, color=FP32_COLOR, label="FP32")
    ax.barh(y + 0.2, [q for _, q, _ in rows], height=0.4, color=INT8_COLOR, label="INT8")
    ax.set_yticks(y, [_plain(n) for n, _, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AP@[.50:.95]")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def pr_curves(int8: DetectionMetrics, fp32: DetectionMetrics) -> bytes:
    """Precision vs recall, INT8 and FP32, at IoU .50 (solid) and averaged over IoU .50:.95 (dashed)."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for m, label, color in ((fp32, "FP32", FP32_COLOR), (int8, "INT8", INT8_COLOR)):
        c = m.pr_curve
        if c.precision_iou50:
            ax.plot(c.recall, c.precision_iou50, color=color, label=f"{label} IoU=.50")
            ax.plot(c.recall, c.precision_mean, color=color, linestyle="--", label=f"{label} IoU=.50:.95")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


def similarity_histograms(o: OutputSimilarity) -> bytes:
    """Value distributions of INT8 and FP32 on shared bins, and the distribution of int8 - fp32."""
    fig = Figure(figsize=(10, 3.4))
    left, right = fig.subplots(1, 2)
    edges = o.values.edges
    if edges:
        for key, color in (("fp32", FP32_COLOR), ("int8", INT8_COLOR)):
            left.stairs(o.values.series[key], edges, color=color, label=key.upper(), linewidth=1.5)
        left.legend()
    left.set_title(_plain(f"{o.name}: values"), fontsize=10)
    if o.errors.edges:
        right.stairs(o.errors.series["error"], o.errors.edges, fill=True, color="#7570b3")
    right.set_title(_plain(f"{o.name}: INT8 - FP32 (min cosine {o.min_cosine:.4f})"), fontsize=10)
    for ax in (left, right):
        ax.set_ylabel("elements")
        ax.grid(alpha=0.3)
    return _png(fig)


def load_image(image: npt.ArrayLike | str | Path) -> npt.NDArray[Any]:
    """An image file or array as an (H, W) or (H, W, 3|4) array matplotlib can show."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise GateInputError(f"sample image {image}: {e}") from e
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise GateInputError(f"sample image: expected (H, W) or (H, W, 3|4), got shape {arr.shape}")
    return arr


def _draw(ax: Any, boxes: Sequence[Mapping[str, Any]], names: Mapping[int, str], min_score: float) -> int:
    shown = 0
    for d in boxes:
        score = d.get("score")
        if score is not None and score < min_score:
            continue
        x, y, w, h = d["bbox"]
        color = f"C{int(d['category_id']) % 10}"
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.5))
        label = names.get(int(d["category_id"]), str(d["category_id"]))
        text = label if score is None else f"{label} {score:.2f}"
        ax.text(
            x, y, _plain(text), fontsize=7, color="white", va="bottom", bbox={"facecolor": color, "pad": 1, "lw": 0}
        )
        shown += 1
    return shown


def detection_sample(
    image: npt.ArrayLike | str | Path,
    int8: Sequence[Mapping[str, Any]],
    fp32: Sequence[Mapping[str, Any]],
    names: Mapping[int, str],
    min_score: float,
    title: str,
) -> bytes:
    """The same image twice, FP32 detections left and INT8 right (boxes below `min_score` hidden)."""
    arr = load_image(image)
    fig = Figure(figsize=(10, 10 * arr.shape[0] / max(1, 2 * arr.shape[1]) + 0.6))
    for ax, boxes, label in zip(fig.subplots(1, 2), (fp32, int8), ("FP32", "INT8"), strict=True):
        ax.imshow(arr)
        n = _draw(ax, boxes, names, min_score)
        ax.set_title(_plain(f"{title}: {label} ({n} boxes, score >= {min_score:g})"), fontsize=9)
        ax.set_axis_off()
    return _png(fig)
