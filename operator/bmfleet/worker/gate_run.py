"""One gate run: samples -> batches for every stage -> INT8 on the simulator and FP32 on onnxruntime ->
metrics -> verdict and report. Kept apart from the CLI wrapper so `bmfleet gate run --local` uses it too."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bmfleet.api.build import Gates
from bmfleet.api.digests import sha256_file
from bmfleet.bmodel import read_model
from bmfleet.gates import classification, datasets, detection, similarity, thresholds, yolo
from bmfleet.gates.errors import GateInputError
from bmfleet.gates.report import DetectionSample, ReportData, write_report
from bmfleet.gates.result import GateResult, combine
from bmfleet.toolchains.simulator import run_bmodel

Sample = dict[str, npt.NDArray[np.float32]]


class GateRun:
    """The gates of one build on one combined bmodel. `timings` splits the wall time: `runtime` (device
    runtime / simulator), `fp32` (onnxruntime) and `ours` (everything else: decode, preprocess, metrics, report)."""

    def __init__(
        self,
        gates: Gates,
        bmodel: Path,
        model: Path,
        calibration: Path | None,
        workdir: Path,
        fp32_cache: Path,
        inputs: Callable[[str], Path],
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        self.gates, self.model, self.calibration, self.work, self.fp32_cache, self.inputs = (
            gates, model, calibration, workdir, fp32_cache, inputs)  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.bmodel = workdir / "combined.bmodel"  # the runtime picks its loader by the file extension
        shutil.copyfile(bmodel, self.bmodel)
        (net,) = read_model(self.bmodel).nets[:1]
        self.stage_batches = [s.inputs[0].shape[0] for s in net.stages]
        self.stage_shape = net.stages[0].inputs[0].shape
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.input_names: list[str] = [str(i.name) for i in self.session.get_inputs()]
        self.output_names: list[str] = [str(o.name) for o in self.session.get_outputs()]
        self.timings = {"runtime": 0.0, "fp32": 0.0, "ours": 0.0, "images": 0.0}
        self._model_digest = sha256_file(model)
        self._runs = 0

    def run(self) -> tuple[GateResult, Path]:
        """All configured gates; returns the verdict and the report path (result.json beside it)."""
        t0 = time.perf_counter()
        results: list[GateResult] = []
        data: dict[str, Any] = {"subtitle": f"{self.bmodel.name}: stages with batch {self.stage_batches}"}
        if self.gates.similarity is not None:
            results.append(self._similarity(data))
        if self.gates.classification is not None:
            results.append(self._classification(data))
        if self.gates.detection is not None:
            results.append(self._detection(data))
        verdict = combine(*results)
        report = write_report(verdict, ReportData(**data), self.work / "report")
        self.timings["ours"] = time.perf_counter() - t0 - self.timings["runtime"] - self.timings["fp32"]
        return verdict, report

    def infer(self, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        """(INT8, FP32) outputs per sample, by the ONNX output names; batches cover every stage."""
        plan = datasets.batch_plan(len(samples), self.stage_batches)
        self._runs += 1
        in_dir, out_dir = self.work / f"run{self._runs}" / "in", self.work / f"run{self._runs}" / "out"
        in_dir.mkdir(parents=True)
        batches, at = [], 0
        for i, size in enumerate(plan):
            chunk = [samples[min(at + j, len(samples) - 1)] for j in range(size)]  # pads by repeating the last
            feed = {n: np.concatenate([s[n] for s in chunk]) for n in self.input_names}
            np.savez(in_dir / f"{i:06d}.npz", **feed)  # type: ignore[arg-type]  # numpy stubs: kwargs vs allow_pickle
            batches.append((feed, min(size, len(samples) - at)))
            at += size
        self.timings["runtime"] += float(run_bmodel(self.bmodel, in_dir, out_dir)["total"])
        fp32 = self._fp32(batches)
        int8: list[Sample] = []
        for i, (_, real) in enumerate(batches):
            with np.load(out_dir / f"{i:06d}.npz") as got:
                arrays = [got[k] for k in got.files]
            if len(arrays) != len(self.output_names):
                raise GateInputError(f"the bmodel has {len(arrays)} outputs, the ONNX model {len(self.output_names)}")
            named = dict(zip(self.output_names, arrays, strict=True))
            int8 += [{n: a[j : j + 1] for n, a in named.items()} for j in range(real)]
        return int8, fp32

    def _fp32(self, batches: list[tuple[Sample, int]]) -> list[Sample]:
        """onnxruntime on the same batches, cached (in a mounted store) by model digest and input content."""
        t0 = time.perf_counter()
        h = hashlib.sha256(self._model_digest.encode())
        for feed, real in batches:
            for n in self.input_names:
                h.update(feed[n][:real].tobytes())
        cache = self.fp32_cache / f"{h.hexdigest()}.npz"
        if cache.is_file():
            with np.load(cache) as hit:
                stacked = {n: hit[n] for n in self.output_names}
        else:
            outs = [self.session.run(self.output_names, {n: f[n] for n in self.input_names}) for f, _ in batches]
            stacked = {
                n: np.concatenate([o[k][:real] for o, (_, real) in zip(outs, batches, strict=True)])
                for k, n in enumerate(self.output_names)
            }
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **stacked)
        total = next(iter(stacked.values())).shape[0]
        self.timings["fp32"] += time.perf_counter() - t0
        return [{n: a[j : j + 1] for n, a in stacked.items()} for j in range(total)]

    def _prepare(self, path: Path, pre: Any) -> datasets.Prepared:
        return datasets.preprocess(path, pre, datasets.input_hw(self.stage_shape, pre))

    def _similarity(self, data: dict[str, Any]) -> GateResult:
        spec = self.gates.similarity
        assert spec is not None and self.calibration is not None
        raw = datasets.calibration_samples(self.calibration, spec.samples)
        samples = [{n: s[n] if n in s else next(iter(s.values())) for n in self.input_names} for s in raw]
        int8, fp32 = self.infer(samples)
        names = spec.outputs or self.output_names
        if unknown := [n for n in names if n not in self.output_names]:
            raise GateInputError(
                f"gates.similarity.outputs: {unknown} are not outputs of the model {self.output_names}"
            )
        outs = similarity.compare_outputs(
            [{n: q[n] for n in names} for q in int8], [{n: r[n] for n in names} for r in fp32]
        )
        data["similarity"] = outs
        th = thresholds.SimilarityThresholds(
            min_cosine=spec.min_cosine,
            min_euclidean_similarity=spec.min_euclidean_similarity,
            max_euclidean_distance=spec.max_euclidean_distance,
        )
        return thresholds.check_similarity(outs, th)

    def _output(self, name: str | None, field: str) -> str:
        if name is None:
            return self.output_names[0]
        if name not in self.output_names:
            raise GateInputError(f"{field}: {name!r} is not an output of the model {self.output_names}")
        return name

    def _classification(self, data: dict[str, Any]) -> GateResult:
        spec = self.gates.classification
        assert spec is not None
        pairs = datasets.classification_set(self.inputs(spec.dataset_uri), spec.limit)
        t0 = time.perf_counter()
        samples = [{self.input_names[0]: self._prepare(p, spec.preprocess).tensor[None]} for p, _ in pairs]
        self.timings["images"] += time.perf_counter() - t0
        int8, fp32 = self.infer(samples)
        out = self._output(spec.output, "gates.classification.output")
        labels = np.array([label for _, label in pairs])
        classes = int(np.prod(fp32[0][out].shape[1:]))
        if labels.max() >= classes or labels.min() < 0:
            raise GateInputError(
                f"labels.txt has label {int(labels.max())} but the model output {out!r} has {classes} classes"
            )
        topk = sorted({k for k in spec.topk if k <= classes})
        q = classification.evaluate(labels, np.concatenate([s[out].reshape(1, -1) for s in int8]), topk)
        r = classification.evaluate(labels, np.concatenate([s[out].reshape(1, -1) for s in fp32]), topk)
        data.update(classification_int8=q, classification_fp32=r)
        max_drop = {1: spec.max_top1_drop} | ({5: spec.max_top5_drop} if spec.max_top5_drop is not None else {})
        minimum = {k: v for k, v in ((1, spec.min_top1), (5, spec.min_top5)) if v is not None}
        th = thresholds.ClassificationThresholds(max_drop=max_drop, warn_drop={}, min_accuracy=minimum)
        return thresholds.check_classification(q, r, th)

    def _detection(self, data: dict[str, Any]) -> GateResult:
        spec = self.gates.detection
        assert spec is not None
        gt, pairs = datasets.coco_set(self.inputs(spec.annotations_uri), self.inputs(spec.images_uri), spec.limit)
        category_ids = sorted(int(c["id"]) for c in gt.get("categories", []))
        if len(category_ids) != spec.decode.num_classes:
            have, want = len(category_ids), spec.decode.num_classes
            raise GateInputError(f"the annotations have {have} categories but decode.numClasses is {want}")
        t0 = time.perf_counter()
        prepared = [self._prepare(p, spec.preprocess) for _, p in pairs]
        self.timings["images"] += time.perf_counter() - t0
        int8, fp32 = self.infer([{self.input_names[0]: p.tensor[None]} for p in prepared])
        decode = yolo.decode_yolo if spec.decode.type == "yolo" else yolo.decoded_rows
        dets: dict[str, list[list[dict[str, Any]]]] = {"int8": [], "fp32": []}
        for key, outs in (("int8", int8), ("fp32", fp32)):
            for (image_id, _), prep, o in zip(pairs, prepared, outs, strict=True):
                rows = decode({n: a[0] for n, a in o.items()}, spec.decode)
                dets[key].append(
                    yolo.detections(rows, spec.nms, image_id, category_ids, prep.ratio, prep.pad, prep.size)
                )
        q = detection.evaluate(gt, [d for per in dets["int8"] for d in per])
        r = detection.evaluate(gt, [d for per in dets["fp32"] for d in per])
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in gt.get("categories", [])}
        samples = [
            DetectionSample(path.name, path, dets["int8"][i], dets["fp32"][i]) for i, (_, path) in enumerate(pairs[:4])
        ]
        data.update(detection_int8=q, detection_fp32=r, samples=samples, category_names=names)
        th = thresholds.DetectionThresholds(
            max_map_drop=spec.max_map_drop, max_map50_drop=spec.max_map50_drop, warn_map_drop=None, min_map=spec.min_map
        )
        return thresholds.check_detection(q, r, th)
