"""``bmfleet sandbox`` argument handling, without starting anything."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bmfleet.sandbox import cli, controlplane

REPO = Path(__file__).resolve().parents[2]


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bmfleet")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cli.STATE_DIR_ENV, raising=False)
    assert cli.default_state_dir() == REPO / ".sandbox"
    monkeypatch.setenv(cli.STATE_DIR_ENV, str(tmp_path))
    assert cli.default_state_dir() == tmp_path


def test_repo_root_is_found_from_the_package() -> None:
    assert controlplane.find_repo_root() == REPO
    with pytest.raises(controlplane.SandboxError):
        controlplane.find_repo_root(Path("/"))


def test_kubeconfig_when_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["sandbox", "kubeconfig", "--state-dir", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert "not running" in out.err


def test_env_overrides_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli.STATE_DIR_ENV, str(tmp_path))
    assert _main(["sandbox", "down"]) == 0
    assert str(tmp_path) in capsys.readouterr().err


def test_status_when_nothing_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["sandbox", "status", "--state-dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out


def test_subcommand_is_required() -> None:
    with pytest.raises(SystemExit):
        _main(["sandbox"])


def test_up_reports_build_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(repo_root: Path) -> Path:
        raise controlplane.SandboxError("build exploded")

    monkeypatch.setattr(controlplane, "find_binaries", broken)
    assert _main(["sandbox", "up", "--state-dir", str(tmp_path)]) == 1
    assert "build exploded" in capsys.readouterr().err
