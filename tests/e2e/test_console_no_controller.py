"""The operator's console of an API server (``lightson api``) while one worker is dead, in
Debian's Chromium: the page still shows every site; the sites without a controller are
marked "no controller" with the age of their last status and its worker, at the top of the
site table (after islanded sites) and first among the faults.

The app is the API role's (``RemoteLive`` over a ``StatusBoard``), on uvicorn on loopback,
its board fed by hand as the status bucket's watcher would (the bucket itself, NATS and
PostgreSQL: tests/bus/test_api_role.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import uvicorn
from browser_support import CHROMIUM, FLAGS, api
from playwright.async_api import Browser, async_playwright, expect

from lightson.api.app import Operations, create_app
from lightson.bus.status import StatusBoard, StatusRecord
from lightson.config import load_program
from lightson.domain.time import SimClock
from lightson.roles.api import RemoteLive
from lightson.services.access import AccessService
from lightson.services.live_status import SiteStatus
from lightson.store import Store
from live_support import IN_EVENT
from net_support import free_port

NOW_S = 5042.0  # this server's wall clock


class Wall:
    def __call__(self) -> float:
        return NOW_S


def _status(site_id: str) -> SiteStatus:
    return SiteStatus(site_id, IN_EVENT - timedelta(seconds=30), "grid", "planned")


def test_the_console_marks_the_sites_without_a_controller(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (.ci/run installs it)"
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    clock = SimClock(IN_EVENT)
    program = load_program("example")
    board = StatusBoard(15.0, Wall())
    # home-lowell's worker w2 died 42 s ago (lease 1.5 s); school-beverly's w1 is alive;
    # no worker ever reported business-worcester.
    board.offer(StatusRecord(_status("home-lowell"), "w2", 5, NOW_S - 42.0, 1.5))
    board.offer(StatusRecord(_status("school-beverly"), "w1", 4, NOW_S - 1.0, 15.0))
    live = RemoteLive(program, store, clock, board, lambda sites, kind: None)
    ops = Operations(
        program, store, clock, live, problems=live.problems, last_report=live.last_report
    )
    admin = AccessService(store, clock).issue("staff", "admin")
    port = free_port()
    config = uvicorn.Config(
        create_app(ops), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    url = f"http://127.0.0.1:{port}"

    async def scenario() -> None:
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not serving.done(), "the HTTP server stopped at start"
                await asyncio.sleep(0.02)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    await console(browser, url, admin)
                finally:
                    await browser.close()
        finally:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        store.close()


async def console(browser: Browser, url: str, token: str) -> None:
    errors: list[str] = []
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    sites = await api(url, token, "/sites")  # 200, every site
    assert [s["status"]["mode"] for s in sites] == ["no controller", "no controller", "grid"]
    await page.goto(f"{url}/#token={token}")
    rows = page.locator("table[data-testid=sites] tr[data-site]")
    await expect(rows).to_have_count(3)
    # No site islanded: the two without a controller come first, by name, then the rest.
    for n, site_id in enumerate(("business-worcester", "home-lowell", "school-beverly")):
        await expect(rows.nth(n)).to_have_attribute("data-site", site_id)
    lowell = page.locator('tr[data-site="home-lowell"]')
    await expect(lowell.locator(".mode.no-controller")).to_have_text("no controller")
    await expect(lowell.locator(".reason")).to_have_text(
        "its last status came 42 s ago from worker w2"
    )
    await expect(page.locator('tr[data-site="school-beverly"] .mode.grid')).to_have_text("grid")
    faults = page.locator("table[data-testid=faults] tr[data-fault]")
    await expect(faults.first).to_have_attribute("data-fault", "home-lowell")
    await expect(faults.first).to_contain_text("no controller")
    await expect(faults.first).to_contain_text("42 s ago from worker w2")
    await expect(faults.nth(1)).to_contain_text("no worker has reported it")
    assert errors == []
