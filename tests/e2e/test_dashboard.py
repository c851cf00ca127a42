"""The dashboard end to end: the operations server on loopback, Debian's Chromium driven by
Playwright. The pages load, their numbers are the API's, an owner sees only their site."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from browser_support import CHROMIUM, FLAGS, api, kw
from playwright.async_api import Page, async_playwright, expect

from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.csms.server import CsmsSettings
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.store import Store
from lightson.store import schema as db
from live_support import IN_EVENT, plugged

SCREENSHOTS = Path()
SOC_150 = {
    "received_at": IN_EVENT - timedelta(minutes=2),
    "source": "ocpp",
    "station_id": "depot-evse1",
    "site_id": "school-beverly",
    "action": "MeterValues",
    "field": "meterValue[0].sampledValue[0].value",
    "value": "1.5",
    "reason": "soc-range",
    "raw": '[2,"m1","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"2026-07-15T19:28:00Z",'
    '"sampledValue":[{"value":150,"measurand":"SoC"}]}]}]',
}


def test_dashboard_pages_match_the_api_and_owners_see_only_their_site(tmp_path: Path) -> None:
    global SCREENSHOTS
    SCREENSHOTS = tmp_path
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (.ci/run installs it)"
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    clock = SimClock(IN_EVENT)
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=1), tx=station)
    store.write([(db.quarantine, SOC_150)]).result(5)  # as the CSMS keeps a 150 % SoC
    access = AccessService(store, clock)
    admin = access.issue("staff", "admin")
    owner = access.issue("lowell-owner", "owner", ["home-lowell"])
    utility = access.issue("national-grid", "utility", utility="national-grid")
    school_owner = access.issue("beverly-schools", "owner", ["school-beverly"])
    server = OperationsServer(
        load_program("example"),
        store,
        clock,
        http_port=0,
        csms_settings=CsmsSettings(port=0),
    )

    async def scenario() -> None:
        async with server.running() as running, async_playwright() as playwright:
            url = running.url
            await running.live.tick_all()
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            refused: list[str] = []  # what the Content-Security-Policy blocked, if anything

            async def watched() -> Page:
                page = await browser.new_page()
                page.on(
                    "console",
                    lambda m: (
                        refused.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )
                page.on("pageerror", lambda error: refused.append(str(error)))
                return page

            try:
                await staff_pages(await watched(), url, admin)
                await owner_pages(await watched(), url, owner)
                await utility_pages(await watched(), url, utility)
                await departure_form(await watched(), url, school_owner)
            finally:
                await browser.close()
            assert refused == []

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        store.close()


async def staff_pages(page: Page, url: str, token: str) -> None:
    program = await api(url, token, "/program")
    await page.goto(f"{url}/#token={token}")
    await expect(page.get_by_test_id("program-name")).to_have_text(program["name"])
    assert "token" not in page.url  # taken out of the address
    await expect(page.get_by_test_id("sites-count")).to_have_text(str(program["sites"]))
    await expect(page.get_by_test_id("available-kw")).to_have_text(
        kw(program["available_discharge_kw_now"])
    )
    sites = {s["site_id"]: s for s in await api(url, token, "/sites")}
    school_row = page.locator('tr[data-site="school-beverly"]')
    await expect(school_row.get_by_test_id("vehicles-kw")).to_have_text(
        kw(sites["school-beverly"]["status"]["vehicles_kw"])
    )
    await expect(page.locator("tr[data-site]")).to_have_count(3)

    await school_row.get_by_role("link").click()
    site = await api(url, token, "/sites/school-beverly")
    await expect(page.get_by_test_id("site-name")).to_have_text("school-beverly")
    await expect(page.get_by_test_id("flow-vehicles")).to_have_text(
        kw(site["status"]["vehicles_kw"])
    )
    await expect(page.get_by_test_id("flow-grid")).to_have_text(kw(site["status"]["grid_kw"]))
    for vehicle in site["vehicles"]:
        await expect(page.locator(f'td[data-vehicle="{vehicle["vehicle_id"]}"]')).to_have_text(
            kw(vehicle["power_kw"])
        )
    await expect(page.get_by_test_id("plan-chart")).to_be_visible()
    backup = await api(url, token, "/sites/school-beverly/backup")
    critical = backup["hours"]["critical"]
    shown = (
        f"≥ {backup['horizon_h']:g} h" if critical >= backup["horizon_h"] else f"{critical:.1f} h"
    )
    await expect(page.get_by_test_id("backup-critical")).to_have_text(shown)

    await page.screenshot(path=str(SCREENSHOTS / "site.png"), full_page=True)
    tomorrow = {
        "event_id": "cs-daily-2026-07-16",
        "program_id": "cs-ci-daily",
        "start": "2026-07-16T19:00:00Z",
        "end": "2026-07-16T22:00:00Z",
    }
    await api(url, token, "/events", tomorrow)
    await page.goto(f"{url}/#/events")
    await expect(page.get_by_test_id("events")).to_be_visible()
    await expect(page.get_by_test_id("openadr")).to_have_text("OpenADR VEN: not configured")
    await page.get_by_role("link", name="cs-daily-2026-07-16").click()
    await expect(page.get_by_test_id("event-name")).to_have_text("cs-daily-2026-07-16")
    performance = await api(url, token, "/events/cs-daily-2026-07-16/performance")
    await expect(page.get_by_test_id("event-total-kw")).to_have_text(kw(performance["total_kw"]))
    rows = page.locator('table[data-testid="event-performance"] tr[data-site]')
    await expect(rows).to_have_count(len(performance["sites"]))
    await expect(
        page.locator('tr[data-site="school-beverly"]').get_by_test_id("site-kw")
    ).to_have_text("no data")  # it has not started: nothing metered yet

    await page.get_by_role("link", name="Data").click()
    lines = await api(url, token, "/completeness?hours=24")
    await expect(page.locator("tr[data-station]")).to_have_count(len(lines))
    depot = next(line for line in lines if line["station_id"] == "depot-evse1")
    assert depot["completeness"] == 1.0  # plugged a minute ago, with a reading then
    await expect(
        page.locator('tr[data-station="depot-evse1"]').get_by_test_id("covered")
    ).to_have_text("100 %")
    # What was kept out: counted per charger, the latest listed with the rule they broke.
    assert depot["quarantined"] == 1
    await expect(
        page.locator('tr[data-station="depot-evse1"]').get_by_test_id("quarantined")
    ).to_have_text("1")
    kept = page.locator('table[data-testid="quarantine"] tr[data-quarantined="depot-evse1"]')
    await expect(kept.get_by_test_id("reason")).to_have_text("soc-range")
    await expect(kept).to_contain_text('"value":150')

    # Staff make the live season's report on request and read it in the page.
    await page.get_by_role("link", name="Reports").click()
    await page.locator("#report-form input[name=days]").fill("2")
    await page.get_by_role("button", name="Show").click()
    report = page.frame_locator('[data-testid="report-frame"]')
    await expect(report.get_by_role("heading", name="Value by site kind")).to_be_visible(
        timeout=60_000
    )
    await expect(report.get_by_role("heading", name="Equipment")).to_be_visible()
    await page.evaluate("document.activeElement.blur()")  # not a form in use any more
    await page.wait_for_timeout(6_000)  # past a refresh: the report stays
    await expect(report.get_by_role("heading", name="Settlement")).to_be_visible()


async def owner_pages(page: Page, url: str, token: str) -> None:
    await page.goto(f"{url}/#token={token}")
    await expect(page.get_by_test_id("who")).to_have_text("lowell-owner (owner)")
    await expect(page.get_by_role("link", name="Reports")).to_be_hidden()  # staff only
    await expect(page.locator("tr[data-site]")).to_have_count(1)
    await expect(page.locator('tr[data-site="home-lowell"]')).to_be_visible()
    await page.goto(f"{url}/#/site/school-beverly")
    await expect(page.get_by_test_id("error")).to_contain_text("no site 'school-beverly'")


async def utility_pages(page: Page, url: str, token: str) -> None:
    """A utility sees its territory's sites without their power, and the totals."""
    await page.goto(f"{url}/#token={token}")
    await expect(page.get_by_test_id("who")).to_have_text("national-grid (utility)")
    await expect(page.locator("tr[data-site]")).to_have_count(2)
    school_row = page.locator('tr[data-site="school-beverly"]')
    await expect(school_row.get_by_role("link")).to_have_count(0)  # no site page for it
    await expect(school_row.get_by_test_id("vehicles-kw")).to_have_text("–")
    program = await api(url, token, "/program")
    assert program["available_discharge_kw_now"] is None  # two sites: fewer than 5
    await expect(page.get_by_test_id("power-withheld")).to_contain_text("fewer than 5")
    await page.goto(f"{url}/#/events")
    await expect(page.get_by_test_id("events-available")).to_have_text("–")
    await expect(page.get_by_test_id("power-withheld")).to_contain_text("fewer than 5")


async def departure_form(page: Page, url: str, token: str) -> None:
    """An owner gives a bus's next departure in the program's time and takes it back."""
    await page.goto(f"{url}/#token={token}")
    await page.goto(f"{url}/#/site/school-beverly")
    form = page.locator("#departure-form")
    await form.locator("select[name=vehicle]").select_option("bus-7")
    await form.locator("input[name=at]").fill("2026-07-15T17:30")  # EDT
    await form.locator("input[name=soc]").fill("90")
    await form.get_by_role("button", name="Set departure").click()
    await expect(page.get_by_test_id("vehicles")).to_contain_text("90 %")
    site = await api(url, token, "/sites/school-beverly")
    bus = next(v for v in site["vehicles"] if v["vehicle_id"] == "bus-7")
    assert bus["departure"]["at"] == "2026-07-15T21:30:00+00:00"
    assert bus["departure"]["target_soc"] == 0.9
    await form.locator("input[name=at]").fill("2026-07-15T10:00")  # past: refused, said
    await form.get_by_role("button", name="Set departure").click()
    await expect(page.get_by_test_id("departure-error")).to_contain_text("departure: is past")
    # Across the daylight-saving changes, whatever the browser's own zone (UTC here).
    for local, instant in (
        ("2025-03-09T03:30", "2025-03-09T07:30:00.000Z"),
        ("2025-03-09T05:30", "2025-03-09T09:30:00.000Z"),
        ("2025-11-02T03:30", "2025-11-02T08:30:00.000Z"),
    ):
        assert await page.evaluate(f"zonedIso('{local}', 'America/New_York')") == instant
    await page.locator("#departure-form").get_by_role("button", name="Back to usual trips").click()
    await expect(page.get_by_test_id("vehicles")).not_to_contain_text("90 %")
