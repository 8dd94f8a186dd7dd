"""The gate report: one self-contained report.html (inline CSS, plots as base64 PNG, no scripts, no external
requests, so it opens from a store, a mail or an air-gapped box) and result.json beside it."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from bmfleet.gates import _plots
from bmfleet.gates.classification import ClassificationMetrics
from bmfleet.gates.detection import STATS, DetectionMetrics
from bmfleet.gates.result import GateCheck, GateResult
from bmfleet.gates.similarity import OutputSimilarity

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.banner{padding:.6em 1em;border-radius:6px;font-size:1.3em}.banner.pass{background:#dafbe1}
.banner.fail{background:#ffebe9}img{max-width:100%;display:block;margin:.5em 0 1.5em}.muted{color:#666}
"""
NUMBER = re.compile(r"^([-+]?\d|n/a$)")  # cells right-aligned as numbers


@dataclass(frozen=True)
class DetectionSample:
    """One image with INT8 and FP32 detections (COCO results: bbox [x, y, w, h], category_id, score)."""

    title: str
    image: npt.ArrayLike | str | Path
    int8: Sequence[Mapping[str, Any]]
    fp32: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class ReportData:
    """What the report plots besides the verdict; every part is optional and its section is left out."""

    title: str = "bmfleet precision gate"
    subtitle: str = ""
    detection_int8: DetectionMetrics | None = None
    detection_fp32: DetectionMetrics | None = None
    classification_int8: ClassificationMetrics | None = None
    classification_fp32: ClassificationMetrics | None = None
    similarity: Sequence[OutputSimilarity] = ()
    samples: Sequence[DetectionSample] = ()
    sample_min_score: float = 0.3
    category_names: Mapping[int, str] = field(default_factory=dict)


def _e(v: object) -> str:
    return html.escape(str(v))


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _num(v: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def _row(cells: Sequence[str], head: bool = False) -> str:
    if head:
        return "<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>"
    return "<tr>" + "".join(f'<td class="n">{c}</td>' if NUMBER.match(c) else f"<td>{c}</td>" for c in cells) + "</tr>"


def _summary(result: GateResult) -> str:
    def verdict(c: GateCheck) -> str:
        if not c.passed:
            return '<span class="fail">FAIL</span>'
        return '<span class="warn">PASS (warn)</span>' if c.warning else '<span class="pass">PASS</span>'

    rule = {"max_drop": "max drop", "min": "min", "max": "max"}
    rows = [_row(["gate", "metric", "INT8", "FP32", "delta", "threshold", "result", "why"], head=True)]
    for c in result.checks:
        digits = 2 if c.unit == "%" else 4
        delta = "" if c.delta_pp is None else f"{c.delta_pp:+.2f} pp"
        threshold = f"{rule[c.rule]} {c.threshold:g}{' pp' if c.rule == 'max_drop' else c.unit}"
        cells = [_e(c.gate), _e(c.metric), _num(c.value, c.unit, digits), _num(c.baseline, c.unit, digits)]
        rows.append(_row([*cells, delta, _e(threshold), verdict(c), _e(c.detail)]))
    cls = "pass" if result.passed else "fail"
    banner = f'<p class="banner {cls}">{"PASSED" if result.passed else "FAILED"}: {_e(result.summary())}</p>'
    return f"<h2>Summary</h2>{banner}<table>{''.join(rows)}</table>"


def _classification(q: ClassificationMetrics, r: ClassificationMetrics) -> str:
    rows = [_row(["metric", "INT8", "FP32", "delta"], head=True)]
    for k in sorted(set(q.accuracy) & set(r.accuracy)):
        delta = f"{q.accuracy[k] - r.accuracy[k]:+.2f} pp"
        rows.append(_row([f"top-{k} accuracy", _num(q.accuracy[k], "%"), _num(r.accuracy[k], "%"), delta]))
    note = f'<p class="muted">{q.num_samples} samples, {q.num_classes} classes.</p>'
    return f"<h2>Classification</h2>{note}<table>{''.join(rows)}</table>"


def _detection(q: DetectionMetrics, r: DetectionMetrics) -> str:
    rows = [_row(["COCO metric", "INT8", "FP32", "delta"], head=True)]
    for name, label in STATS:
        a, b = getattr(q, name), getattr(r, name)
        delta = "" if a is None or b is None else f"{100 * (a - b):+.2f} pp"
        rows.append(_row([_e(label), _num(a, "", 4), _num(b, "", 4), delta]))
    note = (
        f'<p class="muted">{q.num_images} images, {q.num_gt} boxes, {q.num_crowd} crowd regions; '
        f"{q.num_dets} INT8 and {r.num_dets} FP32 detections.</p>"
    )
    fp = {c.category_id: c for c in r.per_class}
    cls_rows = [_row(["category", "gt boxes", "AP INT8", "AP FP32", "AP50 INT8", "AP50 FP32"], head=True)]
    for c in q.per_class:
        b = fp.get(c.category_id)
        b_ap, b_ap50 = (None, None) if b is None else (b.ap, b.ap50)
        aps = [_num(c.ap, "", 4), _num(b_ap, "", 4), _num(c.ap50, "", 4), _num(b_ap50, "", 4)]
        cls_rows.append(_row([_e(f"{c.name} ({c.category_id})"), str(c.num_gt), *aps]))
    return (
        f"<h2>Detection</h2>{note}<table>{''.join(rows)}</table>"
        f"<h3>Per-class AP</h3>{_img(_plots.per_class_ap(q, r), 'per-class AP, INT8 vs FP32')}"
        f"<details><summary>per-class table</summary><table>{''.join(cls_rows)}</table></details>"
        f"<h3>Precision-recall</h3>{_img(_plots.pr_curves(q, r), 'precision-recall curves, INT8 vs FP32')}"
    )


def _similarity(outputs: Sequence[OutputSimilarity]) -> str:
    rows = [_row(["output", "shape", "samples", "min cosine", "min euclidean sim.", "max distance"], head=True)]
    plots = []
    for o in outputs:
        cells = [_e(o.name), _e("x".join(map(str, o.shape))), str(o.samples)]
        rows.append(
            _row(
                [*cells, f"{o.min_cosine:.6f}", f"{o.min_euclidean_similarity:.6f}", f"{o.max_euclidean_distance:.4g}"]
            )
        )
        plots.append(f"<h3>{_e(o.name)}</h3>{_img(_plots.similarity_histograms(o), f'histograms of {o.name}')}")
    return f"<h2>Tensor similarity</h2><table>{''.join(rows)}</table>{''.join(plots)}"


def _samples(data: ReportData) -> str:
    names = dict(data.category_names)
    for m in (data.detection_fp32, data.detection_int8):
        if m is not None:
            names = {c.category_id: c.name for c in m.per_class} | names
    figs = [
        _img(_plots.detection_sample(s.image, s.int8, s.fp32, names, data.sample_min_score, s.title), s.title)
        for s in data.samples
    ]
    return f"<h2>Sample detections: FP32 (left) and INT8 (right)</h2>{''.join(figs)}"


def render_html(result: GateResult, data: ReportData) -> str:
    """The whole report page as a string."""
    parts = [_summary(result)]
    if data.similarity:
        parts.append(_similarity(data.similarity))
    if data.classification_int8 is not None and data.classification_fp32 is not None:
        parts.append(_classification(data.classification_int8, data.classification_fp32))
    if data.detection_int8 is not None and data.detection_fp32 is not None:
        parts.append(_detection(data.detection_int8, data.detection_fp32))
    if data.samples:
        parts.append(_samples(data))
    sub = f'<p class="muted">{_e(data.subtitle)}</p>' if data.subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(data.title)}</title><style>{CSS}</style></head>'
        f"<body><h1>{_e(data.title)}</h1>{sub}{''.join(parts)}</body></html>\n"
    )


def write_report(result: GateResult, data: ReportData, out_dir: Path) -> Path:
    """Write out_dir/report.html and out_dir/result.json (the GateResult); returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "report.html"
    report.write_text(render_html(result, data), encoding="utf-8")
    (out_dir / "result.json").write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report
