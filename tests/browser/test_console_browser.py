"""The console in a real browser: Debian's chromium driven by Playwright (``executable_path``; the
browser download Playwright normally does is not used), against alertbot on a loopback port.

Each test fails on a console error or an uncaught exception in the page, and writes a screenshot of
each page it visits under its temp dir (``ALERTBOT_SCREENSHOTS=docs/img`` writes them there instead:
that is how docs/console.md's pictures are made). Accessibility: axe-core, from the npm package in
tests/browser/node_modules (``npm ci`` there), served to the page by the test; no serious or critical
violation is allowed."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import Harness, MakeHarness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
TOKEN = "browser-api-token-77d2"
FIRING = "am-higherrorrate-nutrition-service-firing.json"
# As the machine's own notes advise for Chromium on a closed network, as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("ALERTBOT_REQUIRE_E2E"),
    reason="chromium is not installed (apt install chromium)",
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the pages read both stores alike, and tests/integration/test_console.py runs on both."""
    return f"sqlite:///{tmp_path}/alertbot.db"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected, and screenshots saved."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(self.shots / f"console-{name}.png"), full_page=True)

    async def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is now."""
        await self.page.add_script_tag(content=AXE.read_text())
        result: dict[str, Any] = await self.page.evaluate("axe.run(document)")
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("ALERTBOT_SCREENSHOTS", tmp_path / "screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    return where


async def console(make_harness: MakeHarness, **config: Any) -> Harness:
    return await make_harness({"ui": {"refresh": "1s"}, **config}, secret_values={"api_token": TOKEN})


async def open_page(browser: Browser, shots: Path, *, bypass_csp: bool = False) -> Watched:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
    return Watched(await context.new_page(), shots)


async def sign_in(w: Watched, h: Harness) -> None:
    await w.page.goto(str(h.client.make_url("/ui/")))
    assert "/ui/login" in w.page.url
    await w.shot("login")
    await w.page.get_by_label("Name").fill("alice")
    await w.page.get_by_label("API token").fill(TOKEN)
    await w.page.get_by_role("button", name="Sign in").click()
    await w.page.wait_for_url("**/ui/")


async def test_a_firing_incident_appears_without_a_reload_and_can_be_silenced(
    make_harness: MakeHarness, browser: Browser, shots: Path
) -> None:
    h = await console(make_harness)
    w = await open_page(browser, shots)
    await sign_in(w, h)
    await w.page.get_by_text("Nothing is firing").wait_for()
    await w.page.evaluate("window.stayedOnPage = true")
    await h.post_file(FIRING)
    row = w.page.locator("#incident-1")
    await row.wait_for(timeout=10_000)  # the list refreshed itself
    assert await w.page.evaluate("window.stayedOnPage") is True
    assert "error_rate 7.2% > critical threshold 5%" in await row.inner_text()  # why that severity
    await w.shot("incidents")
    await row.get_by_role("link", name="HighErrorRate").click()
    await w.page.wait_for_url("**/ui/incidents/1")
    timeline = w.page.locator("ol.timeline li")
    assert await timeline.count() >= 2  # the alert and its notifications
    await w.shot("incident")
    await w.page.get_by_role("button", name="Silence 1h").click()
    await w.page.wait_for_url("**/ui/incidents/1")
    await w.page.get_by_text("silence #1").wait_for()
    await w.page.goto(str(h.client.make_url("/ui/silences")))
    assert "ui:alice (token)" in await w.page.locator("#silence-1").inner_text()
    await w.shot("silences")
    await w.page.goto(str(h.client.make_url("/ui/")))
    assert "silenced by #1" in await w.page.locator("#incident-1").inner_text()
    assert w.errors == []


async def test_the_console_works_from_the_keyboard(make_harness: MakeHarness, browser: Browser, shots: Path) -> None:
    h = await console(make_harness)
    await h.post_file(FIRING)
    w = await open_page(browser, shots)
    await sign_in(w, h)
    await w.page.keyboard.press("Tab")
    assert await w.page.evaluate("document.activeElement.textContent") == "Skip to content"
    await w.page.keyboard.press("Enter")
    assert await w.page.evaluate("document.activeElement.id") == "main"
    link = w.page.get_by_role("link", name="HighErrorRate")
    for _ in range(30):  # Tab through the filters to the incident's link
        await w.page.keyboard.press("Tab")
        if await link.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("the incident's link is not reachable with Tab")
    await w.page.keyboard.press("Enter")
    await w.page.wait_for_url("**/ui/incidents/1")
    ack = w.page.get_by_role("button", name="Acknowledge")
    await ack.focus()
    await w.page.keyboard.press("Enter")
    await w.page.locator("dd").get_by_text("acknowledged by ui:alice (token)").wait_for()
    assert w.errors == []


async def test_every_page_passes_axe_core(make_harness: MakeHarness, browser: Browser, shots: Path) -> None:
    assert AXE.exists(), "run `npm ci` in tests/browser (axe-core)"
    h = await console(make_harness)
    await h.post_file(FIRING)
    w = await open_page(browser, shots, bypass_csp=True)  # the test injects axe-core into the page
    await sign_in(w, h)
    found = {}
    for path in ("/ui/", "/ui/incidents/1", "/ui/silences", "/ui/runs", "/ui/decisions"):
        await w.page.goto(str(h.client.make_url(path)))
        found[path] = await w.axe()
    await w.page.context.clear_cookies()
    await w.page.goto(str(h.client.make_url("/ui/login")))
    found["/ui/login"] = await w.axe()
    assert found == {path: [] for path in found}
    for scheme in ("dark",):
        await w.page.emulate_media(color_scheme=scheme)
        await w.page.goto(str(h.client.make_url("/ui/login")))
        assert await w.axe() == []
    assert w.errors == []


async def test_a_runbook_run_is_undone_after_a_confirm_step_showing_the_undo_plan(
    make_harness: MakeHarness, browser: Browser, shots: Path, k8s: Any
) -> None:
    fake, kube = k8s
    key = ("ai-nutritionist", "nutrition-service-canary")
    h = await make_harness({"ui": {"refresh": "1s"}}, secret_values={"api_token": TOKEN}, kube=kube)
    params = {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}
    body = {"runbook": "emergency-rollback", "params": params, "execute": True, "requested_by": "cli:bob"}
    applied = await (
        await h.client.post("/api/v1/runs", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    ).json()
    assert applied["status"] == "succeeded" and fake.weights(*key) == [[("stable", 100), ("canary", 0)]]
    w = await open_page(browser, shots)
    await sign_in(w, h)
    await w.page.get_by_role("link", name="Runbook runs").click()
    run = w.page.locator(f"#run-{applied['run_id']}")
    assert "requested by cli:bob" in await run.inner_text()
    await w.shot("runs")
    await run.get_by_role("link", name="Undo…").click()
    await w.page.wait_for_url("**/undo")  # the confirm step shows the undo's plan, checked against the cluster
    plan = await w.page.locator("main").inner_text()
    assert "undo: virtualservice ai-nutritionist/nutrition-service-canary http[0] (primary)" in plan
    assert fake.weights(*key) == [[("stable", 100), ("canary", 0)]]  # nothing changed yet
    await w.shot("undo")
    await w.page.get_by_role("button", name=f"Undo run #{applied['run_id']}").click()
    await w.page.wait_for_url("**/ui/runs**")
    assert fake.weights(*key) == [[("stable", 90), ("canary", 10)]]
    undo = w.page.locator("article.run").first
    assert f"undoes #{applied['run_id']}" in await undo.inner_text() and "ui:alice (token)" in await undo.inner_text()
    assert w.errors == []
