"""The sandbox kubelet lays out a Secret volume as a kubelet does: every key a file, or only the listed items at
their paths and modes; a listed key the Secret lacks, or a path that leaves the volume, fails the pod."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bmfleet.sandbox.kubelet import write_secret_volume

DATA = {".dockerconfigjson": b'{"auths": {}}', "ca.crt": b"PEM", "AWS_SECRET_ACCESS_KEY": b"s"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_key_is_a_file_with_the_default_mode(tmp_path: Path) -> None:
    write_secret_volume(tmp_path / "v", DATA, None, 0o440)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == sorted(DATA)
    assert (tmp_path / "v" / ".dockerconfigjson").read_bytes() == DATA[".dockerconfigjson"]
    assert all(_mode(p) == 0o440 for p in (tmp_path / "v").iterdir())


def test_items_choose_keys_paths_and_modes(tmp_path: Path) -> None:
    items = [{"key": "ca.crt", "path": "tls/ca.pem", "mode": 0o400}, {"key": "AWS_SECRET_ACCESS_KEY", "path": "k"}]
    write_secret_volume(tmp_path / "v", DATA, items, 0o644)
    assert (tmp_path / "v" / "tls" / "ca.pem").read_bytes() == b"PEM" and _mode(
        tmp_path / "v" / "tls" / "ca.pem"
    ) == 0o400
    assert _mode(tmp_path / "v" / "k") == 0o644 and not (tmp_path / "v" / ".dockerconfigjson").exists()


@pytest.mark.parametrize("item", [{"key": "missing", "path": "m"}, {"key": "ca.crt", "path": "../out"}])
def test_missing_keys_and_escaping_paths_fail(tmp_path: Path, item: dict[str, str]) -> None:
    with pytest.raises(RuntimeError):
        write_secret_volume(tmp_path / "v", DATA, [item], 0o644)
    assert not (tmp_path / "out").exists()
