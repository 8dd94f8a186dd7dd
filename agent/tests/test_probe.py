"""Probe selection and behaviour: sophon-sail when importable, a probe command, the structural check."""

from __future__ import annotations

import sys
import types

import pytest

from bmfleet_agent import probe
from bmodels import make_bmodel


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.bmodel"
    path.write_bytes(make_bmodel(chip="BM1684"))
    return str(path)


class FakeSail(types.ModuleType):
    """Stands in for sophon.sail: Engine(path, dev_id, mode).get_graph_names()."""

    def __init__(self, graphs, error=None) -> None:
        super().__init__("sophon.sail")
        self.loaded = []
        fake = self

        class Engine:
            def __init__(self, path, dev_id, mode) -> None:
                if error:
                    raise RuntimeError(error)
                fake.loaded.append((path, dev_id, mode))

            def get_graph_names(self):
                return graphs

        self.Engine = Engine
        self.IOMode = types.SimpleNamespace(SYSIO="SYSIO")


def test_default_probe_loads_with_sail_when_installed(monkeypatch, model) -> None:
    sail = FakeSail(["tiny"])
    monkeypatch.setitem(sys.modules, "sophon", types.ModuleType("sophon"))
    monkeypatch.setitem(sys.modules, "sophon.sail", sail)
    probe.default_probe()(model, "BM1684")
    assert sail.loaded == [(model, 0, "SYSIO")]


@pytest.mark.parametrize(("graphs", "error", "message"), [([], None, "no networks"), (["x"], "bmrt boom", "boom")])
def test_sail_failures_are_probe_failures(model, graphs, error, message) -> None:
    with pytest.raises(probe.ProbeError, match=message):
        probe.sail_probe(model, "BM1684", FakeSail(graphs, error))


def test_without_sail_the_structural_check_runs(monkeypatch, model, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "sophon.sail", None)  # import fails
    check = probe.default_probe()
    assert check is probe.structural_probe
    check(model, "BM1684")
    with pytest.raises(probe.ProbeError, match="BM1684X"):
        check(model, "BM1684X")
    junk = tmp_path / "junk.bmodel"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(probe.ProbeError, match="magic"):
        check(str(junk), "BM1684")


def test_probe_command(model) -> None:
    probe.command_probe("true")(model, "BM1684")
    probe.command_probe(f"{sys.executable} -c 'import sys, os; sys.exit(not os.path.exists(sys.argv[1]))' {{path}}")(
        model, "BM1684"
    )
    with pytest.raises(probe.ProbeError, match="exited 3"):
        probe.command_probe(f"{sys.executable} -c 'import sys; sys.exit(3)'")(model, "BM1684")
