"""Shared helpers for all test tiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def load_example(name: str) -> dict[str, Any]:
    """One sample manifest from docs/examples."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


@pytest.fixture
def sample_build() -> dict[str, Any]:
    return load_example("bmodelbuild.yaml")
