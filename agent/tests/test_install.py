"""Installing models: the A/B layout, resume, digest and chip refusals, redirects, retries."""

from __future__ import annotations

import os

from bmfleet_agent import fsutil
from bmodels import digest, make_bmodel
from conftest import install


def links(agent, name="det"):
    d = agent.reconciler.dir(name)
    return d.active(), d.previous()


def assert_active_verified(agent, expected, name="det"):
    d = agent.reconciler.dir(name)
    target = os.path.join(d.path, os.readlink(d.current_link))
    assert fsutil.sha256_file(target) == expected == d.active()


def test_install_then_upgrade_keeps_previous(make_agent, gateway, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    assert_active_verified(agent, digest(v1))
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["activeDigest"], rep["bytesDownloaded"]) == ("Active", digest(v1), len(v1))
    assert gateway.last_report("dev-1")["chip"] == "BM1684"

    install(agent, gateway, "dev-1", [gateway.model("det", v2)])
    assert links(agent) == (digest(v2), digest(v1))
    slots = sorted(os.listdir(agent.reconciler.dir("det").slots))
    assert len(slots) == 2  # current + previous, no leftovers
    assert gateway.report_model("dev-1", "det")["previousDigest"] == digest(v1)


def test_resume_after_a_killed_download_fetches_only_missing_bytes(make_agent, gateway, v2) -> None:
    m = gateway.model("det", v2)
    gateway.drop_after[m["digest"]] = [2500, 1]
    agent = make_agent()
    gateway.set_desired("dev-1", [m])
    agent.step(poll_wait=0)
    rec = agent.state.models["det"]
    assert rec.state == "Downloading"
    assert rec.bytes_downloaded == 2500
    assert os.path.getsize(agent.reconciler.dir("det").part(m["digest"])) == 2500

    restarted = make_agent()  # a new process on the same state dir
    restarted.run_once()
    assert_active_verified(restarted, m["digest"])
    assert gateway.served[m["digest"]] == len(v2)  # 2500 + the rest, nothing twice
    ranges = [h.get("Range") for meth, path, h in gateway.requests if "/blobs/" in path]
    assert ranges == [None, "bytes=2500-"]


def test_big_blobs_download_in_pieces_with_progress_reports(make_agent, gateway, v2) -> None:
    agent = make_agent(step_bytes=2048)
    m = gateway.model("det", v2)
    install(agent, gateway, "dev-1", [m])
    assert_active_verified(agent, m["digest"])
    progress = [r["models"][0]["bytesDownloaded"] for r in gateway.reports["dev-1"] if r["models"]]
    pieces = list(range(2048, len(v2), 2048))
    assert len(pieces) >= 2
    assert [b for b in progress if 0 < b < len(v2)] == pieces
    ranges = [h.get("Range") for meth, path, h in gateway.requests if "/blobs/" in path]
    assert ranges == [None] + [f"bytes={b}-" for b in pieces]


def test_corrupted_blob_is_refused_and_the_old_model_stays(make_agent, gateway, clock, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    bad = gateway.model("det", v2)
    gateway.corrupt.add(bad["digest"])
    install(agent, gateway, "dev-1", [bad])
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["reason"], rep["activeDigest"]) == ("Failed", "DigestMismatch", digest(v1))
    d = agent.reconciler.dir("det")
    assert not os.path.exists(d.part(bad["digest"])) and not d.has_slot(bad["digest"])
    assert_active_verified(agent, digest(v1))

    gateway.corrupt.clear()  # transient corruption: retried after the backoff, not before
    agent.run_once()
    assert links(agent)[0] == digest(v1)
    clock.advance(10)
    agent.run_once()
    assert_active_verified(agent, digest(v2))


def test_chip_declared_by_the_gateway_is_refused_before_download(make_agent, gateway, v1) -> None:
    agent = make_agent()
    m = gateway.model("det", make_bmodel(chip="BM1684X"), chip="BM1684X")
    install(agent, gateway, "dev-1", [m])
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["reason"]) == ("Failed", "ChipMismatch")
    assert gateway.served.get(m["digest"], 0) == 0


def test_chip_in_the_header_is_checked_too(make_agent, gateway, v1) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    liar = gateway.model("det", make_bmodel(chip="BM1684X", label="x"), chip="BM1684")  # says BM1684, is not
    install(agent, gateway, "dev-1", [liar])
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["reason"]) == ("Failed", "ChipMismatch")
    assert "BM1684X" in rep["message"]
    assert not agent.reconciler.dir("det").has_slot(liar["digest"])
    assert_active_verified(agent, digest(v1))
    agent.run_once()  # terminal: not downloaded again
    assert gateway.served[liar["digest"]] == len(make_bmodel(chip="BM1684X", label="x"))


def test_not_a_bmodel_is_refused(make_agent, gateway) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", b"\0" * 500)])
    rep = gateway.report_model("dev-1", "det")
    assert (rep["state"], rep["reason"], rep["activeDigest"]) == ("Failed", "InvalidBModel", None)


def test_5xx_is_retried_with_backoff(make_agent, gateway, clock, v1) -> None:
    agent = make_agent()
    gateway.fail_next["blob"] = 1
    install(agent, gateway, "dev-1", [gateway.model("det", v1)])
    assert agent.state.models["det"].reason == "DownloadFailed"
    clock.advance(6)
    agent.run_once()
    assert_active_verified(agent, digest(v1))


def test_blob_redirect_to_another_origin_drops_the_token(make_agent, gateway, v1) -> None:
    from gateway_double import GatewayDouble

    store = GatewayDouble().start()
    try:
        m = gateway.model("det", v1)
        store.add_blob(v1)
        gateway.redirect_blobs_to = store.url
        agent = make_agent()
        install(agent, gateway, "dev-1", [m])
        assert_active_verified(agent, digest(v1))
        hops = [h for _, path, h in store.requests if path.startswith("/store/blobs/")]
        assert hops and all("Authorization" not in h for h in hops)
    finally:
        store.stop()


def test_server_that_ignores_range_rewrites_from_the_start(make_agent, gateway, v2) -> None:
    m = gateway.model("det", v2)
    gateway.drop_after[m["digest"]] = [1000, 1]
    gateway.ignore_range = True
    agent = make_agent()
    install(agent, gateway, "dev-1", [m])
    assert_active_verified(agent, m["digest"])
    assert gateway.served[m["digest"]] == 1000 + len(v2)


def test_two_models_are_independent(make_agent, gateway, v1, v2) -> None:
    agent = make_agent()
    install(agent, gateway, "dev-1", [gateway.model("det", v1), gateway.model("cls", v2)])
    assert_active_verified(agent, digest(v1), "det")
    assert_active_verified(agent, digest(v2), "cls")
