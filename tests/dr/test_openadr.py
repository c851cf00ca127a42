"""The OpenADR 2.0b round trip on loopback: an openleadr VTN started by the test sends an
event; our VEN files it through the intake service, and the school's plan changes."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from openleadr import OpenADRServer

from lightson.config import load_program
from lightson.domain.state import SiteState
from lightson.domain.time import SimClock, TimeGrid
from lightson.dr.openadr import OpenAdrVen, program_from_market_context
from lightson.forecast.profiles import profile_forecast
from lightson.optimize import build_site_inputs, plan_site
from lightson.services.events import EventService
from lightson.store import Store
from net_support import free_port

EVENT_START = datetime(2030, 7, 16, 19, tzinfo=UTC)  # 15:00 in Boston, a Tuesday


async def _round_trip(
    tmp_path: Path, start: datetime, then_cancel: bool = False
) -> tuple[EventService, list[Any], OpenAdrVen]:
    port = free_port()
    store = Store(f"sqlite:///{tmp_path / 'adr.db'}")
    service = EventService(store, SimClock(datetime(2030, 7, 15, 20, tzinfo=UTC)))
    vtn = OpenADRServer(
        vtn_id="utility-vtn",
        http_host="127.0.0.1",
        http_port=port,
        requested_poll_freq=timedelta(seconds=0.5),
    )

    async def register(registration_info: dict[str, Any]) -> tuple[str, str]:
        return "ven-1", "registration-1"

    answers: list[Any] = []

    async def opted(ven_id: str, event_id: str, opt_type: str) -> None:
        answers.append((ven_id, event_id, opt_type))

    vtn.add_handler("on_create_party_registration", register)
    await vtn.run_async()
    ven = OpenAdrVen(service, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "lightson-ven")
    try:
        await ven.start()
        await asyncio.sleep(1.0)
        vtn.add_event(
            ven_id="ven-1",
            signal_name="simple",
            signal_type="level",
            intervals=[{"dtstart": start, "duration": timedelta(hours=3), "signal_payload": 1.0}],
            callback=opted,
            event_id="ev-1",
            market_context="http://utility.example/cs-ci-daily",
        )
        for _ in range(100):
            await asyncio.sleep(0.1)
            if answers:
                break
        if then_cancel:
            vtn.cancel_event("ven-1", "ev-1")
            for _ in range(100):
                await asyncio.sleep(0.1)
                event = service.book().events.get("adr-ev-1")
                if event is not None and event.cancelled_at is not None:
                    break
    finally:
        await ven.stop()
        await vtn.stop()
    return service, answers, ven


def test_an_event_from_the_vtn_becomes_ours_and_changes_the_plan(tmp_path: Path) -> None:
    service, answers, _ = asyncio.run(asyncio.wait_for(_round_trip(tmp_path, EVENT_START), 60))
    assert answers == [("ven-1", "ev-1", "optIn")]
    event = service.book().events["adr-ev-1"]
    assert (event.program_id, event.start, event.end, event.source) == (
        "cs-ci-daily",
        EVENT_START,
        EVENT_START + timedelta(hours=3),
        "openadr",
    )

    program = load_program("example")
    site = program.site("business-worcester")
    grid = TimeGrid(datetime(2030, 7, 16, 4, tzinfo=UTC), 96, program.step)
    state = SiteState(peak_so_far_kw=0.0)

    def discharge_in_event(events: tuple[Any, ...]) -> float:
        with_events = dataclasses.replace(program, events=events)
        inputs = build_site_inputs(
            with_events, site, grid, profile_forecast(with_events, site, grid), state
        )
        plan = plan_site(inputs)
        window = slice(
            grid.first_index_from(EVENT_START),
            grid.first_index_from(EVENT_START + timedelta(hours=3)),
        )
        power = np.sum([v.power_kw for v in plan.vehicles], axis=0)
        return float(-power[window].sum() * inputs.step_h)

    events = tuple(service.book().for_site(site.site_id, site.enrollments))
    assert [e.event_id for e in events] == ["adr-ev-1"]
    # Without the event the EV9s do not discharge in that window; with it they give the
    # event tens of kWh (2 EV9s at 11.5 kW for 3 h could give 69 kWh).
    assert discharge_in_event(()) < 5.0
    assert discharge_in_event(events) > 30.0


def test_an_event_our_rules_refuse_is_answered_opt_out(tmp_path: Path) -> None:
    noon = datetime(2030, 7, 16, 16, tzinfo=UTC)  # 12:00 in Boston: outside 15:00-20:00
    service, answers, ven = asyncio.run(asyncio.wait_for(_round_trip(tmp_path, noon), 60))
    assert answers == [("ven-1", "ev-1", "optOut")]
    assert service.book().events == {}
    assert "within 15:00-20:00" in ven.refused[0][1]


def test_market_context_names_the_program() -> None:
    assert program_from_market_context("http://utility.example/cs-ci-daily") == "cs-ci-daily"
    assert program_from_market_context("http://cs-residential-battery") == "cs-residential-battery"


def test_a_cancellation_from_the_vtn_cancels_our_event(tmp_path: Path) -> None:
    service, answers, _ = asyncio.run(
        asyncio.wait_for(_round_trip(tmp_path, EVENT_START, then_cancel=True), 60)
    )
    assert answers[0] == ("ven-1", "ev-1", "optIn")
    assert service.book().events["adr-ev-1"].cancelled_at is not None
    assert service.book().for_site("business-worcester", ["cs-ci-daily"]) == []
