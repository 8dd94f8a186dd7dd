"""Wire-format parsing and configuration merging."""

from __future__ import annotations

import json

import pytest

from bmfleet_agent import protocol
from bmfleet_agent.config import ConfigError, load
from bmodels import digest

D = digest(b"x")


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2024-01-01T00:00:00Z", 1704067200.0),
        ("2024-01-01T01:30:00+01:30", 1704067200.0),
        ("2023-12-31T23:00:00-01:00", 1704067200.0),
        ("2024-01-01T00:00:00.25Z", 1704067200.25),
        ("2024-01-01t00:00:00z", 1704067200.0),
    ],
)
def test_rfc3339(text: str, epoch: float) -> None:
    assert protocol.parse_time(text) == epoch


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01T00:00:00", "yesterday"])
def test_rfc3339_refuses_local_or_partial_times(text: str) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_time(text)


def test_format_time_round_trips() -> None:
    assert protocol.parse_time(protocol.format_time(1704067200.0)) == 1704067200.0


def test_desired_defaults_and_refusals() -> None:
    doc = {
        "version": 7,
        "models": [
            {"name": "det", "digest": D, "size": 10},
            {"name": "Bad_Name", "digest": D, "size": 1},
            {"name": "cls", "size": 1},
            {"name": "seg", "digest": D, "size": -1},
            {"name": "det", "digest": D, "size": 10},
            {"name": "old", "action": "rollback"},
        ],
    }
    desired = protocol.parse_desired(doc)
    assert desired.version == 7
    det, old = desired.models
    assert (det.url, det.action, det.activate_at) == (f"/v1/blobs/{D}", "install", None)
    assert (old.action, old.digest) == ("rollback", None)
    assert sorted(desired.errors) == ["Bad_Name", "cls", "det", "seg"]
    assert "twice" in desired.errors["det"]


def test_desired_document_must_be_an_object() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_desired([])
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_desired({"version": "1", "models": []})


def test_key_changes_with_generation() -> None:
    a = protocol.parse_model({"name": "m", "digest": D, "size": 1, "generation": 1})
    b = protocol.parse_model({"name": "m", "digest": D, "size": 1, "generation": 2})
    assert a.key != b.key


def test_config_file_then_env_then_flags(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    f = tmp_path / "agent.json"
    f.write_text(json.dumps({"gateway": "https://file:1", "chip": "bm1684", "pollWait": 5,
                             "labels": {"site": "a"}, "bootstrapTokenFile": str(token)}))  # fmt: skip
    env = {"BMFLEET_GATEWAY": "https://env:2", "BMFLEET_POLL_WAIT": "7", "BMFLEET_LABELS": "site=b,row=3"}
    c = load(str(f), env=env, flags={"poll_wait": 9, "state_dir": str(tmp_path)})
    assert (c.gateway, c.poll_wait, c.chip, c.bootstrap_token) == ("https://env:2", 9, "BM1684", "s3cret")
    assert c.labels == {"site": "b", "row": "3"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"gateway": "https://g", "chip": "BM1648"}, "unknown chip"),
        ({"gateway": "ftp://g", "chip": "BM1684"}, "http"),
        ({"gateway": "https://g"}, "chip is required"),
        ({"gateway": "https://g", "chip": "BM1684", "pollwait": 3}, "unknown keys"),
        ({"gateway": "https://g", "chip": "BM1684", "pollWait": "soon"}, "poll_wait"),
    ],
)
def test_config_errors_name_the_setting(tmp_path, doc, message) -> None:
    f = tmp_path / "agent.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load(str(f), env={})
