"""HTTPS to the gateway is verified against the configured CA bundle (certificates made with openssl)."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from bmfleet_agent.agent import Agent
from bmfleet_agent.config import Config
from bmodels import digest
from conftest import install
from gateway_double import GatewayDouble

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bmfleet test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    run("req", *ec, "-keyout", "gw.key", "-out", "gw.csr", "-subj", "/CN=gateway")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "gw.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "gw.pem",
        "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


@pytest.fixture
def tls_gateway(pki):
    gw = GatewayDouble(tls=(str(pki / "gw.pem"), str(pki / "gw.key"))).start()
    yield gw
    gw.stop()


def agent_for(gw, state_dir, ca_bundle=None) -> Agent:
    config = Config(gateway=gw.url, state_dir=str(state_dir), chip="BM1684", bootstrap_token="boot-secret",
                    device_id="dev-tls", poll_wait=0, sdk_version="t", ca_bundle=ca_bundle).validate()  # fmt: skip
    return Agent(config, log=logging.getLogger("test"))


def test_installs_over_https_with_the_ca_bundle(tls_gateway, pki, tmp_path, v1) -> None:
    assert tls_gateway.url.startswith("https://")
    agent = agent_for(tls_gateway, tmp_path / "s", str(pki / "ca.pem"))
    install(agent, tls_gateway, "dev-tls", [tls_gateway.model("det", v1)])
    assert agent.reconciler.dir("det").active() == digest(v1)


def test_refuses_a_gateway_it_cannot_verify(tls_gateway, tmp_path) -> None:
    agent = agent_for(tls_gateway, tmp_path / "s")  # system trust store: does not know the test CA
    assert agent.run_once() is False
    assert "CERTIFICATE_VERIFY_FAILED" in agent.last_error
    assert not tls_gateway.requests
