"""The committed COCO fixtures are exactly what their generator writes (no hand edits, no drift)."""

from __future__ import annotations

import importlib.util

from tests.unit.gates.conftest import COCO_DIR, FIXTURES


def test_fixtures_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("coco_fixture_generator", COCO_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = gen.fixtures()
    assert sorted(fresh) == FIXTURES and len(FIXTURES) >= 5
    for name, (gt, dets) in fresh.items():
        assert (COCO_DIR / f"{name}.gt.json").read_text() == gen.render(gt), f"{name}.gt.json is stale"
        assert (COCO_DIR / f"{name}.dets.json").read_text() == gen.render(dets), f"{name}.dets.json is stale"
