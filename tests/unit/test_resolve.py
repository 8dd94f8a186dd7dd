"""The resolve step: input digests pin the spec, and the compile cache keys on content, not on URIs."""

from __future__ import annotations

import json
from pathlib import Path

from bmfleet.api.build import BModelBuildSpec
from bmfleet.api.digests import sha256_file, sha256_tree
from bmfleet.api.shapes import parse_shape_string
from bmfleet.pipeline.jobs import compile_args, compile_cache_key
from bmfleet.pipeline.pods import WorkerConfig
from bmfleet.pipeline.resolve import build_resolve_job, pin, resolve_args, unpinned
from bmfleet.pipeline.stepjob import Owner
from bmfleet.worker.resolve import main as resolve_main

A, B, C = "a" * 64, "b" * 64, "c" * 64
SHAPES = parse_shape_string("[1,3,32,32]")


def _spec(**model: object) -> BModelBuildSpec:
    return BModelBuildSpec.model_validate(
        {
            "toolchain": {"name": "tpu-mlir", "image": "reg/w@sha256:" + "0" * 64},
            "model": {"format": "onnx", "uri": "pvc://models/m.onnx", **model},
            "chip": "BM1684",
            "precision": "INT8",
            "shapes": [{"shape": "[1,3,32,32]"}],
            "calibration": {"datasetUri": "pvc://models/calib", "samples": 4},
            "output": {"store": {"type": "pvc", "uri": "pvc://artifacts/builds"}},
        }
    )


def test_unpinned_inputs_have_no_cache_key_until_pinned() -> None:
    spec = _spec()
    assert unpinned(spec) == {"model": "pvc://models/m.onnx", "calibration": "pvc://models/calib"}
    assert compile_cache_key("ns", spec, SHAPES, "img") is None
    pinned = pin(spec, {"model": A, "calibration": B})
    assert unpinned(pinned) == {}
    assert "--model-sha256=" + A in compile_args(pinned, SHAPES)
    assert "--calibration-sha256=" + B in compile_args(pinned, SHAPES)
    assert compile_cache_key("ns", pinned, SHAPES, "img") is not None


def test_key_follows_content_not_location() -> None:
    one = pin(_spec(), {"model": A, "calibration": B})
    moved = pin(_spec(uri="pvc://other/place.onnx"), {"model": A, "calibration": B})
    changed = pin(_spec(), {"model": C, "calibration": B})
    key = compile_cache_key("ns", one, SHAPES, "img")
    assert key == compile_cache_key("ns", moved, SHAPES, "img")
    assert key != compile_cache_key("ns", changed, SHAPES, "img")
    assert key != compile_cache_key("ns", one, SHAPES, "other-img")
    assert key != compile_cache_key("ns", one, parse_shape_string("[4,3,32,32]"), "img")


def test_declared_digests_are_kept() -> None:
    spec = _spec(sha256=C)
    assert unpinned(spec) == {"calibration": "pvc://models/calib"}
    assert pin(spec, {"model": A, "calibration": B}).model.sha256 == C


def test_resolve_job_reads_afresh_per_generation() -> None:
    spec, config = _spec(), WorkerConfig()
    one = build_resolve_job(Owner("b", "ns", "uid", 1), spec, config, "img")
    two = build_resolve_job(Owner("b", "ns", "uid", 2), spec, config, "img")
    assert one["metadata"]["name"] != two["metadata"]["name"]
    container = one["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["bmfleet", "worker", "resolve"]
    assert "--input=model=pvc://models/m.onnx" in container["args"]
    assert "sophgo.com/tpu" not in container["resources"]["requests"]
    mounts = {m["mountPath"]: m.get("readOnly") for m in container["volumeMounts"]}
    assert mounts["/run/bmfleet/inputs/models"] is True


def test_tree_digest_is_the_sorted_listing(tmp_path: Path) -> None:
    d = tmp_path / "calib"
    (d / "sub").mkdir(parents=True)
    (d / "b.npz").write_bytes(b"b")
    (d / "sub" / "a.npz").write_bytes(b"a")
    listing = f"b.npz {sha256_file(d / 'b.npz')}\nsub/a.npz {sha256_file(d / 'sub' / 'a.npz')}\n"
    import hashlib

    assert sha256_tree(d) == hashlib.sha256(listing.encode()).hexdigest()
    before = sha256_tree(d)
    (d / "sub" / "a.npz").write_bytes(b"A")
    assert sha256_tree(d) != before
    assert sha256_tree(d / "b.npz") == sha256_file(d / "b.npz")


def test_worker_resolve_reports_digests_and_bad_input(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    result = tmp_path / "result.json"
    assert resolve_main([f"--input=model=file://{model}", f"--result={result}"]) == 0
    assert json.loads(result.read_text()) == {"state": "Succeeded", "digests": {"model": sha256_file(model)}}
    assert resolve_main([f"--input=model=file://{tmp_path}/missing.onnx", f"--result={result}"]) == 2
    record = json.loads(result.read_text())
    assert record["reason"] == "BadInput" and "missing.onnx" in record["message"]


def test_resolve_args_name_only_unpinned_inputs() -> None:
    assert resolve_args(_spec(sha256=A), "/r") == ["--input=calibration=pvc://models/calib", "--result=/r"]
