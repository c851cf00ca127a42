"""The operator's overview and site pages in Debian's Chromium during an event and a storm:
the running event's progress figures are the API's, the islanded site comes first, the
charts carry their axis labels, a stale plan says so, an islanded site shows its dispatch.

``LIGHTSON_SCREENSHOTS=docs/img`` saves the screenshots that docs/operations.md shows
(``overview.png``, ``site.png``, ``site-islanded.png``); without it they go to a temporary
folder."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from browser_support import CHROMIUM, FLAGS, api, kw
from playwright.async_api import Page, async_playwright, expect

from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.csms.server import CsmsSettings
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.store import Store
from lightson.store import schema as db
from live_support import IN_EVENT, plugged

DAY_START = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)  # 12:00 EDT
EVENT_START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)  # 15:00 EDT
EVENT_END = datetime(2026, 7, 15, 22, 0, tzinfo=UTC)


def readings(station: str, charge_kw: float, event_kw: float) -> list[tuple[Any, dict[str, Any]]]:
    """A reading every 5 minutes from 12:00 EDT until now: ``charge_kw`` before the event,
    ``event_kw`` in it."""
    rows = []
    at = DAY_START
    while at < IN_EVENT:
        power_kw = event_kw if at >= EVENT_START else charge_kw
        sample = {"station_id": station, "evse_id": 1, "at": at, "power_kw": power_kw, "soc": 0.7}
        rows.append((db.meter_samples, sample))
        at += timedelta(minutes=5)
    return rows


def world(store: Store, clock: SimClock) -> None:
    """Both ConnectedSolutions events of the day, announced the evening before; the buses
    and the business's EVs charging from noon and discharging from 15:00."""
    for station in ("depot-evse1", "depot-evse2", "biz-evse1", "biz-evse2"):
        plugged(store, station, 0.8, DAY_START - timedelta(minutes=1), tx=station)
    plugged(store, "home-lowell-evse1", 0.6, EVENT_START, tx="h")  # silent since
    rows = readings("depot-evse1", 30.0, -60.0) + readings("depot-evse2", 20.0, -55.0)
    rows += readings("biz-evse1", 11.0, -11.0) + readings("biz-evse2", 7.0, 5.0)
    store.write(rows).result(10)
    events = EventService(store, clock)
    for program_id, event_id in (
        ("cs-residential-battery", "cs-res-2026-07-15"),
        ("cs-ci-daily", "cs-daily-2026-07-15"),
    ):
        events.submit(
            {
                "event_id": event_id,
                "program_id": program_id,
                "start": EVENT_START.isoformat(),
                "end": EVENT_END.isoformat(),
                "notice_at": "2026-07-15T01:00:00Z",
            }
        )


def test_the_overview_during_an_event_and_a_storm(tmp_path: Path) -> None:
    shots = Path(os.environ.get("LIGHTSON_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (.ci/run installs it)"
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    clock = SimClock(IN_EVENT)
    world(store, clock)
    admin = AccessService(store, clock).issue("staff", "admin")
    server = OperationsServer(
        load_program("example"), store, clock, http_port=0, csms_settings=CsmsSettings(port=0)
    )

    async def scenario() -> None:
        async with server.running() as running, async_playwright() as playwright:
            url = running.url
            await asyncio.to_thread(
                running.live.report_grid, "school-beverly", "meter", GridSignal.LOST
            )
            await running.live.tick_all()
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            refused: list[str] = []  # what the Content-Security-Policy blocked; script errors
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on(
                    "console",
                    lambda m: (
                        refused.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )
                page.on("pageerror", lambda error: refused.append(str(error)))
                await overview(page, url, admin, shots)
                await site_pages(page, url, admin, shots, clock, running)
            finally:
                await browser.close()
            assert refused == []

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        store.close()


async def overview(page: Page, url: str, token: str, shots: Path) -> None:
    await page.goto(f"{url}/#token={token}")
    now = await api(url, token, "/overview")
    running = now["running"]
    assert running["event_ids"] == ["cs-daily-2026-07-15", "cs-res-2026-07-15"]
    await expect(page.get_by_test_id("event-kw-average")).to_have_text(kw(running["kw_average"]))
    await expect(page.get_by_test_id("event-kw-now")).to_have_text(kw(running["kw_now"]))
    await expect(page.get_by_test_id("event-minutes-left")).to_have_text("150")
    share = round(running["kw_average"] / 1000 * 100)
    await expect(page.get_by_test_id("event-share")).to_have_text(f"{share} %")
    # Islanded first, in its own list and at the top of the site table.
    islanded = page.locator('table[data-testid="islanded"] tr[data-islanded]')
    await expect(islanded).to_have_count(1)
    await expect(islanded.first).to_have_attribute("data-islanded", "school-beverly")
    await expect(page.locator("table[data-testid=sites] tr[data-site]").first).to_have_attribute(
        "data-site", "school-beverly"
    )
    silent = page.locator('tr[data-fault="home-lowell"]', has_text="silent charger")
    await expect(silent).to_contain_text("no reading for 30 min")
    # The day's chart: its axes titled, hours in the program's time, the event shaded.
    chart = page.get_by_test_id("day-chart")
    await expect(chart.locator("text.axis-title")).to_have_text(
        ["time (America/New_York, EDT)", "kW"]
    )
    await expect(chart.locator("text.x-tick", has_text="15:00")).to_have_count(1)
    assert await chart.locator("text.y-tick").count() >= 3
    await expect(chart.locator("rect.shade")).to_have_count(1)  # the two events' one window
    await expect(page.get_by_test_id("day-chart-legend")).to_contain_text("vehicles discharging kW")
    await page.screenshot(path=str(shots / "overview.png"), full_page=True)
    # Filtered by kind, then sorted by site name, descending on a second click.
    await page.locator("select[data-filter=kind]").select_option("business")
    await expect(page.locator("table[data-testid=sites] tr[data-site]")).to_have_count(1)
    await page.locator("select[data-filter=kind]").select_option("")
    await page.locator("th[data-sort=site]").click()
    await page.locator("th[data-sort=site]").click()
    rows = page.locator("table[data-testid=sites] tr[data-site]")
    await expect(rows.first).to_have_attribute("data-site", "school-beverly")
    await expect(rows.last).to_have_attribute("data-site", "business-worcester")


async def site_pages(
    page: Page, url: str, token: str, shots: Path, clock: SimClock, running: Any
) -> None:
    await page.goto(f"{url}/#/site/business-worcester")
    chart = page.get_by_test_id("plan-chart")
    await expect(chart.locator("text.axis-title").first).to_have_text(
        "time (America/New_York, EDT)"
    )
    await expect(page.get_by_test_id("plan-stale")).to_have_count(0)
    legend = page.get_by_test_id("plan-chart-legend")
    await expect(legend.locator("li")).to_have_count(3)  # grid, vehicles, building less PV
    box = await legend.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1280  # not cut off
    await page.screenshot(path=str(shots / "site.png"), full_page=True)

    # The school's grid is down: its dispatch, not a grid plan.
    await page.goto(f"{url}/#/site/school-beverly")
    await expect(page.get_by_test_id("islanded-dispatch")).to_contain_text("The grid is down")
    await expect(page.get_by_test_id("plan-chart")).to_have_count(0)
    await expect(page.get_by_test_id("flow-grid")).to_have_text("0.0")
    await page.screenshot(path=str(shots / "site-islanded.png"), full_page=True)

    # 80 minutes on without a tick: the business should have re-planned after 60 (at the
    # tick after), and has not.
    clock.advance(timedelta(minutes=80))
    await page.goto(f"{url}/#/site/business-worcester")
    await expect(page.get_by_test_id("plan-stale")).to_contain_text("Stale")
    del running
