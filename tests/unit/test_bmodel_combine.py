"""bmfleet.bmodel.combine on synthetic models: the vendor's merge rules, dedup, stage order, the checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmfleet.bmodel import BModelError, RawTable, combine, open_bmodel, read_model, synth
from bmfleet.bmodel.codec import walk_binaries
from bmfleet.bmodel.synth import StageSpec, filler


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def stage_contents(path: Path) -> dict[tuple[str, tuple[int, ...]], list[tuple[str, str]]]:
    """Per (net, first input shape): every Binary's path suffix and the SHA-256 of its bytes."""
    out = {}
    with open_bmodel(path) as f:
        for n in f.root.get_tables("net"):
            for p in n.get_tables("parameter"):
                shape = tuple(p.get_tables("input_tensor")[0].get_tables("shape")[0].get_ints("dim"))
                out[(n.get_text("name"), shape)] = [
                    (path_, hashlib.sha256(f.blob(b)).hexdigest()) for path_, b, _ in walk_binaries(p)
                ]
    return out


def strip_binaries(t: RawTable) -> RawTable:
    """The stage with every Binary start zeroed: what must survive a combine unchanged."""
    from bmfleet.bmodel.codec import Binary, map_binaries

    c = t.copy()
    map_binaries(c, lambda b, _v: Binary(0, b.size))
    return c


def test_reference_scenario_resnet_two_batches_and_yolo(tmp_path: Path) -> None:
    """bmodel-format.md §8: 2 nets, 2 stages under resnet, the shared weights stored once."""
    kernel = filler("kernel", 1000)
    w = filler("resnet-weights", 5000)
    a = write(tmp_path, "r1.bmodel", synth.classifier("resnet", 1, weights=w, kernel=kernel, align=1))
    b = write(tmp_path, "r4.bmodel", synth.classifier("resnet", 4, weights=w, kernel=kernel, align=1))
    y = write(tmp_path, "y.bmodel", synth.classifier("yolo", 1, weights=filler("yolo-w", 7000), kernel=kernel, align=1))
    out = tmp_path / "c.bmodel"
    rep = combine([a, b, y], out, align=1)
    assert rep.nets == [("resnet", 2), ("yolo", 1)]
    m = read_model(out)
    assert [n.name for n in m.nets] == ["resnet", "yolo"]
    resnet = m.nets[0]
    assert [s.inputs[0].shape[0] for s in resnet.stages] == [4, 1]  # largest batch first
    # binary_size = kernel + resnet coeff (once) + yolo coeff + 3 x (bdc + gdma)
    assert m.header is not None
    assert m.header.binary_size == 1000 + 5000 + 7000 + 3 * (640 + 384)
    assert resnet.stages[0].coeff_check_code == resnet.stages[1].coeff_check_code
    # every stage's blobs have the same bytes as in its source file
    expect = {**stage_contents(a), **stage_contents(b), **stage_contents(y)}
    assert stage_contents(out) == expect
    assert m.kernel_module is not None and m.kernel_module.size == 1000
    assert m.neuron_size == max(s.ctx_size for n in m.nets for s in n.stages)


def test_every_stage_field_is_carried_over(tmp_path: Path) -> None:
    extra = {"io_addr": 123, "io_size": 456, "cpu_mem_size": 7, "dynamic_coeff_offset": 99, "core_num": 2}
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 2, extra=extra))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 1))
    out = tmp_path / "o.bmodel"
    combine([b, a], out)
    with open_bmodel(a) as fa, open_bmodel(out) as fo:
        src = fa.root.get_tables("net")[0].get_tables("parameter")[0]
        got = fo.root.get_tables("net")[0].get_tables("parameter")[0]  # batch 2 sorts first
        assert strip_binaries(got) == strip_binaries(src)
        assert got.get_int("io_size") == 456


def test_blobs_are_4k_aligned_like_model_tool(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 2))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 1))
    out = tmp_path / "o.bmodel"
    rep = combine([a, b], out)
    assert rep.file_size == out.stat().st_size and rep.file_size % 4096 == 0
    m = read_model(out)
    assert m.aligned_4k
    with open_bmodel(out) as f:
        assert f.header.binary_offset % 4096 == 0
        assert all(bb.start % 4096 == 0 for _, bb, _ in walk_binaries(f.root) if bb.size)
    assert out.stat().st_mode & 0o777 != 0o600


def test_combining_a_file_with_itself_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    with pytest.raises(BModelError, match="input shapes are the same"):
        combine([a, a], tmp_path / "o.bmodel")
    assert not (tmp_path / "o.bmodel").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_dtype": 2}, "input 'input' dtype differs \\(int8 vs float32\\)"),
        ({"in_scale": 0.5}, "input 'input' scale differs \\(0.5 vs 1.0\\)"),
        ({"in_zero_point": 3}, "input 'input' zero_point differs \\(3 vs 0\\)"),
        ({"extra": {"is_dynamic": 1}}, "cannot have dynamic and static stages"),
        ({"extra": {"n_dynamic": 1}}, "n_dynamic/h_w_dynamic differ"),
    ],
)
def test_stage_conflicts_are_clear_errors(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 4, **kwargs))
    with pytest.raises(BModelError, match=message) as e:
        combine([a, b], tmp_path / "o.bmodel")
    assert "b.bmodel net 0 stage 0" in str(e.value) and "a.bmodel net 0 stage 0" in str(e.value)


def test_input_and_output_names_must_match(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    s_in = StageSpec([("data", [4, 3, 32, 32])], [("output", [4, 10])])
    s_out = StageSpec([("input", [4, 3, 32, 32])], [("logits", [4, 10])])
    b = write(tmp_path, "b.bmodel", synth.model([("n", [s_in])]))
    c = write(tmp_path, "c.bmodel", synth.model([("n", [s_out])]))
    with pytest.raises(BModelError, match="input 0 name differs \\('data' vs 'input'\\)"):
        combine([a, b], tmp_path / "o.bmodel")
    with pytest.raises(BModelError, match="output names differ"):
        combine([a, c], tmp_path / "o.bmodel")
    two_in = StageSpec([("input", [4, 3, 32, 32]), ("mask", [4, 1])], [("output", [4, 10])])
    d = write(tmp_path, "d.bmodel", synth.model([("n", [two_in])]))
    with pytest.raises(BModelError, match="input count differs \\(2 vs 1\\)"):
        combine([a, d], tmp_path / "o.bmodel")


def test_output_dtype_difference_is_a_warning(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 4, out_dtype=1))
    rep = combine([a, b], tmp_path / "o.bmodel")
    assert len(rep.warnings) == 1 and "output 'output' dtype differs (float16 vs float32)" in rep.warnings[0]


def test_chips_must_match(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1, chip="BM1684X"))
    b = write(tmp_path, "b.bmodel", synth.classifier("m", 1, chip="BM1684"))
    with pytest.raises(BModelError, match="chip BM1684 differs from BM1684X"):
        combine([a, b], tmp_path / "o.bmodel")


def test_bm1684_uninitialised_kernel_mode_is_ignored(tmp_path: Path) -> None:
    """TPU-MLIR 1.30.2 BM1684 files carry garbage in KernelModule.mode (empty kernel); model_tool needs
    --refresh first. We combine them directly and write mode 0, like --refresh."""
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 4, chip="BM1684", kernel_mode=-4096))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 1, chip="BM1684"))  # mode 0: refreshed
    out = tmp_path / "o.bmodel"
    combine([a, b], out)
    with open_bmodel(out) as f:
        km = f.root.get_table("kernel_module")
        assert km is not None and "mode" not in km.fields


def test_real_kernel_modes_must_agree(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 4, kernel_mode=1))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 1, kernel_mode=0))
    with pytest.raises(BModelError, match="inconsistent kernel module mode among models"):
        combine([a, b], tmp_path / "o.bmodel")
    c = write(tmp_path, "c.bmodel", synth.classifier("n", 1, kernel_mode=1))
    combine([a, c], tmp_path / "o.bmodel")
    m = read_model(tmp_path / "o.bmodel")
    assert m.kernel_module is not None and m.kernel_module.mode == 1


def test_different_kernels_warn_and_first_wins(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 4, kernel=b"A" * 100))
    b = write(tmp_path, "b.bmodel", synth.classifier("n", 1, kernel=b"B" * 200))
    rep = combine([a, b], tmp_path / "o.bmodel")
    assert any("2 different kernel modules" in w for w in rep.warnings)
    m = read_model(tmp_path / "o.bmodel")
    assert m.kernel_module is not None and m.kernel_module.size == 100


def test_first_input_without_kernel_takes_the_next_ones(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 4, kernel=b""))
    b = write(tmp_path, "b.bmodel", synth.classifier("m", 1, kernel=b"K" * 64))
    combine([a, b], tmp_path / "o.bmodel")
    m = read_model(tmp_path / "o.bmodel")
    assert m.kernel_module is not None and m.kernel_module.size == 64


def test_missing_input_and_bad_output_dir(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    with pytest.raises(BModelError, match="cannot read"):
        combine([a, tmp_path / "nope.bmodel"], tmp_path / "o.bmodel")
    with pytest.raises(BModelError, match="cannot write"):
        combine([a], tmp_path / "no-such-dir" / "o.bmodel")
    with pytest.raises(BModelError, match="no input files"):
        combine([], tmp_path / "o.bmodel")


def test_create_time_and_version(tmp_path: Path) -> None:
    a = write(tmp_path, "a.bmodel", synth.classifier("n", 1))
    combine([a], tmp_path / "o.bmodel", create_time="Thu Jan  1 00:00:00 2026\n", version="2.2+x")
    m = read_model(tmp_path / "o.bmodel")
    assert (m.time, m.version) == ("Thu Jan  1 00:00:00 2026\n", "2.2+x")
    combine([a], tmp_path / "p.bmodel")
    assert read_model(tmp_path / "p.bmodel").time.endswith("\n")


@settings(max_examples=25, deadline=None)
@given(
    plan=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 8)), min_size=1, max_size=6, unique=True),
    align=st.sampled_from([1, 4096]),
)
def test_combine_properties(tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[str, int]], align: int) -> None:
    """Any set of (net, batch) files combines into: nets in first-appearance order, stages largest batch first,
    every blob unchanged, identical blobs stored once."""
    tmp = tmp_path_factory.mktemp("c")
    paths = [write(tmp, f"{n}{b}.bmodel", synth.classifier(n, b, kernel=b"kk" * 50, align=align)) for n, b in plan]
    out = tmp / "o.bmodel"
    rep = combine(paths, out, align=align)
    order = list(dict.fromkeys(n for n, _ in plan))
    assert [n for n, _ in rep.nets] == order
    m = read_model(out)
    for net in m.nets:
        batches = [s.inputs[0].shape[0] for s in net.stages]
        assert batches == sorted((b for n, b in plan if n == net.name), reverse=True)
    expect: dict[tuple[str, tuple[int, ...]], list[tuple[str, str]]] = {}
    for p in paths:
        expect.update(stage_contents(p))
    assert stage_contents(out) == expect
    with open_bmodel(out) as f:
        starts: dict[str, int] = {}
        for _, b, _ in walk_binaries(f.root):
            if b.size:
                digest = hashlib.sha256(f.blob(b)).hexdigest()
                assert starts.setdefault(digest, b.start) == b.start  # one copy per content
