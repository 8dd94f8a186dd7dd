"""Registration, the credential file, rotation with a grace period, and losing a credential."""

from __future__ import annotations

import json
import os
import stat

from bmfleet_agent import credentials
from bmodels import digest
from conftest import install


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_registers_once_and_keeps_the_credential_private(make_agent, gateway) -> None:
    agent = make_agent()
    agent.run_once()
    cred_path = credentials.path(agent.config.state_dir)
    assert mode(cred_path) == 0o600
    assert mode(agent.config.state_dir) == 0o700
    with open(cred_path) as f:
        doc = json.load(f)
    assert doc["deviceId"] == "dev-1" and doc["token"]
    assert gateway.tokens[doc["token"]][0] == "dev-1"
    make_agent().run_once()  # restart: same credential, no second registration
    registrations = [p for m, p, _ in gateway.requests if p == "/v1/register"]
    assert len(registrations) == 1
    assert all(h.get("Authorization") == "Bearer " + doc["token"] for m, p, h in gateway.requests if "/devices/" in p)


def test_wrong_bootstrap_token_registers_nothing(make_agent, gateway) -> None:
    agent = make_agent(bootstrap_token="guess")
    assert agent.run_once() is False
    assert not os.path.exists(credentials.path(agent.config.state_dir))
    assert "401" in agent.last_error


def test_rotation_on_request_with_grace_for_the_old_token(make_agent, gateway, clock, v1) -> None:
    gateway.clock = clock.now
    agent = make_agent()
    agent.run_once()
    old = agent.credential.token
    gateway.rotate_on_next_status = True
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])  # the status answer asks for rotation
    new = credentials.load(agent.config.state_dir)
    assert new.token != old and agent.credential.token == new.token
    assert mode(credentials.path(agent.config.state_dir)) == 0o600
    # An agent that died before saving the new token still gets in with the old one, for the grace period.
    clock.advance(60)
    credentials.save(agent.config.state_dir, credentials.Credential("dev-1", old, clock.now()))
    stale = make_agent()
    assert stale.run_once() is True
    clock.advance(gateway.grace)
    credentials.save(agent.config.state_dir, credentials.Credential("dev-1", old, clock.now()))
    expired = make_agent(bootstrap_token="")
    assert expired.run_once() is False and "401" in expired.last_error
    assert agent.reconciler.dir("det").active() == digest(v1)  # models are untouched by auth trouble


def test_rotation_by_age(make_agent, gateway, clock) -> None:
    agent = make_agent(rotate_after=100.0)
    agent.run_once()
    first = agent.credential.token
    clock.advance(50)
    agent.run_once()
    assert agent.credential.token == first
    clock.advance(51)
    agent.run_once()
    assert agent.credential.token != first
    assert [p for m, p, _ in gateway.requests].count("/v1/devices/dev-1/rotate") == 1


def test_revoked_credential_registers_again_with_the_bootstrap_token(make_agent, gateway) -> None:
    agent = make_agent()
    agent.run_once()
    gateway.tokens.clear()  # revoked on the gateway
    agent.run_once()
    assert agent.run_once() is True
    assert [p for m, p, _ in gateway.requests].count("/v1/register") == 2
    assert credentials.load(agent.config.state_dir).token in gateway.tokens
