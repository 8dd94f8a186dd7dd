"""The gate report in a real browser: headless Debian Chromium (hack/setup-browser.sh) driven by Playwright
opens report.html copied alone into an empty directory (so it must be self-contained), with no console or
page errors, no network requests, and every plot decoded; a full-page screenshot is kept as a test artefact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Request, sync_playwright

from tests.unit.gates.sample_report import full_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("BMFLEET_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run hack/setup-browser.sh")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    built, result = full_report(tmp_path / "build")
    alone = tmp_path / "alone"
    alone.mkdir()
    report = Path(shutil.copy(built, alone / "report.html"))
    problems: list[str] = []
    requests: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console: {msg.text}")

    def on_request(req: Request) -> None:
        requests.append(req.url)

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", on_request)
            page.goto(report.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, width: e.naturalWidth}))"
            )
            title = page.title()
            banner = page.inner_text("p.banner")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "gate-report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()

    print(f"report screenshot: {shot}")
    assert problems == []
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert len(images) == 6, images
    for img in images:
        assert img["complete"] and img["width"] > 0, img
    assert title == "bmfleet precision gate"
    assert banner.startswith("PASSED" if result.passed else "FAILED")
    assert shot.stat().st_size > 10_000
