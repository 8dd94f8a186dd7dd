"""Kubeconfig writing and the loopback guard."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from bmfleet.sandbox.kubeconfig import (
    NotLoopbackError,
    current_server,
    require_loopback,
    write_cert_kubeconfig,
    write_token_kubeconfig,
)
from bmfleet.sandbox.pki import make_pki


def test_cert_kubeconfig_loads_in_the_kubernetes_client(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    path = write_cert_kubeconfig(
        tmp_path / "admin.kubeconfig",
        "https://127.0.0.1:6443",
        pki.ca_cert.read_bytes(),
        pki.admin_cert.read_bytes(),
        pki.admin_key.read_bytes(),
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
    assert cfg.host == "https://127.0.0.1:6443"
    assert Path(cfg.ssl_ca_cert).read_bytes() == pki.ca_cert.read_bytes()
    assert Path(cfg.cert_file).read_bytes() == pki.admin_cert.read_bytes()
    assert Path(cfg.key_file).read_bytes() == pki.admin_key.read_bytes()


def test_token_kubeconfig_embeds_token_and_ca(tmp_path: Path) -> None:
    path = write_token_kubeconfig(
        tmp_path / "sa.kubeconfig", "https://127.0.0.1:1234", b"CA PEM", "tok3n", "system:serviceaccount:a:b"
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["users"] == [{"name": "system:serviceaccount:a:b", "user": {"token": "tok3n"}}]
    cluster = doc["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA PEM"
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
    assert cfg.auth_settings()["BearerToken"]["value"] == "Bearer tok3n"


@pytest.mark.parametrize(
    "server",
    [
        "https://127.0.0.1:6443",
        "https://127.8.9.10",
        "https://[::1]:6443",
        "https://localhost:1",
        "https://LOCALHOST",
    ],
)
def test_require_loopback_accepts(tmp_path: Path, server: str) -> None:
    path = write_token_kubeconfig(tmp_path / "k", server, b"", "t", "u")
    require_loopback(path)
    require_loopback(str(path))


@pytest.mark.parametrize(
    "server",
    [
        "https://10.0.0.1:6443",
        "https://0.0.0.0:6443",
        "https://kubernetes.example.com",
        "https://localhost.example.com",
        "https://127.0.0.1.nip.io",
        "https://[::2]:6443",
        "/tmp/no-scheme",
    ],
)
def test_require_loopback_refuses(tmp_path: Path, server: str) -> None:
    path = write_token_kubeconfig(tmp_path / "k", server, b"", "t", "u")
    with pytest.raises(NotLoopbackError, match="not loopback"):
        require_loopback(path)


def test_require_loopback_follows_current_context(tmp_path: Path) -> None:
    doc = {
        "clusters": [
            {"name": "local", "cluster": {"server": "https://127.0.0.1:1"}},
            {"name": "prod", "cluster": {"server": "https://prod.example.com"}},
        ],
        "contexts": [
            {"name": "a", "context": {"cluster": "local", "user": "u"}},
            {"name": "b", "context": {"cluster": "prod", "user": "u"}},
        ],
        "users": [{"name": "u", "user": {}}],
        "current-context": "b",
    }
    path = tmp_path / "k"
    path.write_text(yaml.safe_dump(doc))
    assert current_server(path) == "https://prod.example.com"
    with pytest.raises(NotLoopbackError):
        require_loopback(path)
    doc["current-context"] = "a"
    path.write_text(yaml.safe_dump(doc))
    require_loopback(path)


def test_require_loopback_rejects_broken_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("clusters: []\n")
    with pytest.raises(ValueError, match="current-context"):
        require_loopback(path)
    path.write_text("current-context: x\ncontexts: []\n")
    with pytest.raises(ValueError, match="no context named"):
        require_loopback(path)
