"""Shared fixtures: a gateway TEST DOUBLE per test, a settable clock, and agents wired to both."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, List

import pytest

from bmfleet_agent.agent import Agent
from bmfleet_agent.config import Config
from bmodels import make_bmodel
from gateway_double import GatewayDouble

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def gateway() -> Iterator[GatewayDouble]:
    gw = GatewayDouble().start()
    yield gw
    gw.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def v1() -> bytes:
    return make_bmodel(label="v1")


@pytest.fixture
def v2() -> bytes:
    return make_bmodel(label="v2", payload=6000)


@pytest.fixture
def make_agent(tmp_path: Any, gateway: GatewayDouble, clock: FakeClock) -> Callable[..., Agent]:
    """Agent factory; calling it again with the same device is a restart of that device."""

    def make(device: str = "dev-1", **overrides: Any) -> Agent:
        probe = overrides.pop("probe", None)
        settings = dict(
            gateway=gateway.url, state_dir=str(tmp_path / device), chip="BM1684", bootstrap_token="boot-secret",
            device_id=device, poll_wait=0, sdk_version="0.4.9-test", chunk_size=1024,
        )  # fmt: skip
        settings.update(overrides)
        return Agent(Config(**settings).validate(), clock=clock, probe=probe, log=logging.getLogger("test"))

    return make


def install(agent: Agent, gateway: GatewayDouble, device: str, models: List[Any]) -> None:
    """Publish `models` for `device` and let the agent do everything it can."""
    gateway.set_desired(device, models)
    agent.run_once()
