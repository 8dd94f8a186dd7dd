"""The Dockerfile passes hadolint with every rule on, and installs through hack/install-runtime.sh, the same
step this file runs for real (wheels at the pinned versions, then an install with no index)."""

import os
import re
import subprocess
import sys
import tomllib
import venv

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bmfleet.api.crds import all_crds_yaml
from tests.conftest import ROOT

HADOLINT = os.path.join(os.path.dirname(sys.executable), "hadolint")
DOCKERFILE = ROOT / "Dockerfile"
SCRIPT = ROOT / "hack" / "install-runtime.sh"
LOCK = ROOT / "hack" / "runtime-requirements.txt"


def hadolint(path):
    return subprocess.run(
        [HADOLINT, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_hadolint_config_is_strict():
    config = yaml.safe_load((ROOT / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "style" and config["ignored"] == []
    assert "ignore=" not in DOCKERFILE.read_text()  # no inline `# hadolint ignore=` pragmas either


def test_dockerfile_passes_hadolint():
    out = hadolint(DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("line", "rule"),
    [("RUN pip install requests", "DL3013"), ("USER root", "DL3002"), ('LABEL "--x"="y"', "DL3048")],
)
def test_hadolint_really_fails_a_bad_line(tmp_path, line, rule):
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + line + "\n")
    out = hadolint(bad)
    assert out.returncode != 0 and rule in out.stdout


def _instructions():
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [line.split(" ", 1) for line in lines]


def test_multi_stage_pinned_base_non_root_numeric_user():
    froms = [args for op, args in _instructions() if op == "FROM"]
    assert len(froms) >= 2
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm AS base", froms[0])
    users = [args for op, args in _instructions() if op == "USER"]
    assert users[-1] == "65532:65532"


def test_python_packages_go_through_the_shared_install_step():
    runs = [args for op, args in _instructions() if op == "RUN"]
    assert not [r for r in runs if "pip " in r], "install with hack/install-runtime.sh, not pip directly"
    assert [r for r in runs if "install-runtime.sh" in r] == [
        "sh hack/install-runtime.sh wheels /src /wheels",
        "--mount=type=bind,from=build,source=/wheels,target=/wheels "
        "--mount=type=bind,from=build,source=/src/hack,target=/hack "
        "sh /hack/install-runtime.sh install /wheels && bmfleet --version",
    ]


def _lock():
    pins = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    return {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in pins}


def test_lock_pins_every_dependency_of_pyproject_within_its_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = _lock()
    for dep in map(Requirement, deps):
        name = canonicalize_name(dep.name)
        assert name in lock, f"{dep} is not pinned: run `hack/install-runtime.sh lock .`"
        assert dep.specifier.contains(lock[name]), f"{dep}: pinned {lock[name]}; run `hack/install-runtime.sh lock .`"


def _freeze(python):
    out = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True)
    return {canonicalize_name(n): v for n, v in (line.split("==") for line in out.stdout.split())}


def test_install_step_for_real(tmp_path):
    """What the image build runs, into a fresh venv: exactly the pinned set, and a working `bmfleet`."""
    wheels = ROOT / os.environ.get("BMFLEET_CACHE", ".cache") / "runtime-wheelhouse"  # kept: fetched once
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["sh", str(SCRIPT), "wheels", str(ROOT), str(wheels)], env=env, check=True, timeout=600)
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    seeded = _freeze(python)  # what venv itself put there (pip, maybe setuptools)
    env["PYTHON"] = str(python)
    subprocess.run(["sh", str(SCRIPT), "install", str(wheels)], env=env, check=True, timeout=600)

    installed = {k: v for k, v in _freeze(python).items() if k not in seeded}
    assert installed.pop("bmfleet") == "0.1.0"
    assert installed == _lock()
    crds = subprocess.run([target / "bin" / "bmfleet", "crds"], capture_output=True, text=True, check=True)
    assert crds.stdout == all_crds_yaml()


def test_worker_image_recipe_passes_hadolint_and_uses_the_shared_step(tmp_path):
    text = (ROOT / "docs" / "operations" / "worker-image.md").read_text()
    (recipe,) = re.findall(r"```dockerfile\n(.*?)```", text, flags=re.S)
    path = tmp_path / "worker-tpu-mlir.Dockerfile"
    path.write_text(recipe)
    out = hadolint(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sh hack/install-runtime.sh wheels /src /wheels" in recipe
    assert "sh /hack/install-runtime.sh install /wheels" in recipe and "pip install" not in recipe
    assert "USER 65532:65532" in recipe and "BMFLEET_TPU_MLIR_BIN=/opt/tpu-mlir-1.30.2/venv/bin" in recipe
