"""The OpenADR 2.0b round trip on loopback: an openleadr VTN started by the test sends an
event; our VEN files it through the intake service, and the school's plan changes."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openleadr import OpenADRServer

from lightson.config import load_program
from lightson.domain.assets import Site
from lightson.domain.errors import ConfigError
from lightson.domain.state import SiteState
from lightson.domain.time import SimClock, TimeGrid
from lightson.dr.openadr import (
    Backoff,
    OpenAdrVen,
    VenSettings,
    program_from_market_context,
    territory,
)
from lightson.forecast.profiles import profile_forecast
from lightson.optimize import build_site_inputs, plan_site
from lightson.programs.events import ProgramEvent
from lightson.services.events import EventService
from lightson.store import Store
from net_support import free_port

EVENT_START = datetime(2030, 7, 16, 19, tzinfo=UTC)  # 15:00 in Boston, a Tuesday


async def _round_trip(
    tmp_path: Path,
    start: datetime,
    then_cancel: bool = False,
    sites: tuple[Site, ...] | None = None,
    targets: list[dict[str, str]] | None = None,
) -> tuple[EventService, list[Any], OpenAdrVen, list[ProgramEvent]]:
    port = free_port()
    store = Store(f"sqlite:///{tmp_path / 'adr.db'}")
    clock = SimClock(datetime(2030, 7, 15, 20, tzinfo=UTC))
    service = EventService(store, clock)
    vtn = OpenADRServer(
        vtn_id="utility-vtn",
        http_host="127.0.0.1",
        http_port=port,
        requested_poll_freq=timedelta(seconds=1),  # whole seconds: 0.5 s arrives as PT0S
    )

    async def register(registration_info: dict[str, Any]) -> tuple[str, str]:
        return "ven-1", "registration-1"

    answers: list[Any] = []

    async def opted(ven_id: str, event_id: str, opt_type: str) -> None:
        answers.append((ven_id, event_id, opt_type))

    vtn.add_handler("on_create_party_registration", register)
    await vtn.run_async()
    settings = VenSettings(f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "lightson-ven")
    filed: list[ProgramEvent] = []  # what the VEN hands the server to re-plan on
    ven = OpenAdrVen(service, settings, clock, sites, filed.append, utility="eversource")
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
            targets=targets,
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
    return service, answers, ven, filed


def test_an_event_from_the_vtn_becomes_ours_and_changes_the_plan(tmp_path: Path) -> None:
    service, answers, _, _ = asyncio.run(asyncio.wait_for(_round_trip(tmp_path, EVENT_START), 60))
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
    service, answers, ven, _ = asyncio.run(asyncio.wait_for(_round_trip(tmp_path, noon), 60))
    assert answers == [("ven-1", "ev-1", "optOut")]
    assert service.book().events == {}
    assert "within 15:00-20:00" in ven.refused[0][1]


def test_market_context_names_the_program() -> None:
    assert program_from_market_context("http://utility.example/cs-ci-daily") == "cs-ci-daily"
    assert program_from_market_context("http://cs-residential-battery") == "cs-residential-battery"


def test_a_cancellation_from_the_vtn_cancels_our_event(tmp_path: Path) -> None:
    service, answers, _, filed = asyncio.run(
        asyncio.wait_for(_round_trip(tmp_path, EVENT_START, then_cancel=True), 60)
    )
    assert answers[0] == ("ven-1", "ev-1", "optIn")
    assert service.book().events["adr-ev-1"].cancelled_at is not None
    # The cancellation is handed on too: the server re-plans without the event at once.
    assert [(e.event_id, e.cancelled_at is not None) for e in filed] == [
        ("adr-ev-1", False),
        ("adr-ev-1", True),
    ]
    assert service.book().for_site("business-worcester", ["cs-ci-daily"]) == []


def test_an_event_naming_a_site_outside_the_vtns_territory_is_answered_opt_out(
    tmp_path: Path,
) -> None:
    """Eversource's VTN calls the Beverly school, a National Grid customer: refused (optOut)
    and nothing is filed."""
    _, eversource = territory(load_program("example"), "eversource")
    service, answers, ven, _ = asyncio.run(
        asyncio.wait_for(
            _round_trip(
                tmp_path, EVENT_START, sites=eversource, targets=[{"resource_id": "school-beverly"}]
            ),
            60,
        )
    )
    assert answers == [("ven-1", "ev-1", "optOut")]
    assert service.book().events == {}
    assert ven.refused == [
        ("adr-ev-1", "targets: not in the VTN's territory (eversource): ['school-beverly']")
    ]
    assert (ven.status.events_received, ven.status.events_refused) == (1, 1)


def test_an_event_naming_no_site_calls_the_territorys_enrolled_sites_only(
    tmp_path: Path,
) -> None:
    """No resource named: the territory's sites enrolled in the program (Eversource's one
    business), not every enrolled site of the program (the school too)."""
    _, eversource = territory(load_program("example"), "eversource")
    service, answers, _, _ = asyncio.run(
        asyncio.wait_for(_round_trip(tmp_path, EVENT_START, sites=eversource), 60)
    )
    assert answers == [("ven-1", "ev-1", "optIn")]
    assert service.book().events["adr-ev-1"].sites == ("business-worcester",)


def test_the_territory_is_the_named_utilitys_sites() -> None:
    program = load_program("example")
    utility, sites = territory(program, "national-grid")
    assert (utility, [s.site_id for s in sites]) == (
        "national-grid",
        ["home-lowell", "school-beverly"],
    )
    with pytest.raises(ConfigError, match="several utilities; name the VTN's: eversource, "):
        territory(program, None)
    with pytest.raises(ConfigError, match="no site of 'unitil'; known: eversource, national-grid"):
        territory(program, "unitil")


class _Fixed(random.Random):
    """``random()`` gives the values it was made with, in turn."""

    def __init__(self, *values: float) -> None:
        super().__init__()
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_registration_backoff_doubles_to_its_bound_with_jitter() -> None:
    backoff = Backoff(first_s=5.0, max_s=300.0, jitter=0.2)
    rng = _Fixed(0.0, 0.0, 0.5, 0.0, 0.0, 0.999)
    # 5, 10, 20·(1 − 0.2·0.5) = 18, 40, then 5·2^6 = 320 capped at 300, and 300·(1 − 0.1998)
    waits = [backoff.delay_s(n, rng) for n in (1, 2, 3, 4, 7, 50)]
    assert waits == pytest.approx([5.0, 10.0, 18.0, 40.0, 300.0, 240.06])
    with pytest.raises(ValueError, match="first_s <= max_s"):
        Backoff(first_s=10.0, max_s=5.0)


def test_settings_name_the_option_that_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--openadr-vtn: must be an http"):
        VenSettings("vtn.example", "ven")
    with pytest.raises(ConfigError, match="--openadr-cert: the certificate and its key go"):
        VenSettings("https://vtn.example", "ven", cert=tmp_path / "ven.pem")


def test_a_ven_whose_registration_the_vtn_drops_registers_again_and_polls_on(
    tmp_path: Path,
) -> None:
    """The VTN forgets the VEN (asks it to re-register) and refuses the first re-registration:
    openleadr's client would stop for good; ours goes back to registering (with backoff),
    is accepted, and takes the next event."""
    port = free_port()
    clock = SimClock(datetime(2030, 7, 15, 20, tzinfo=UTC))
    store = Store(f"sqlite:///{tmp_path / 'adr.db'}")
    service = EventService(store, clock)
    known = {"ven-1": False}
    registrations: list[bool] = []  # each registration asked for: accepted?

    async def register(info: dict[str, Any]) -> tuple[str, str] | bool:
        accepted = len(registrations) != 1  # the first re-registration is refused
        registrations.append(accepted)
        known["ven-1"] = accepted
        return ("ven-1", "registration-1") if accepted else False

    def lookup(ven_id: str) -> dict[str, str] | None:
        return {"ven_id": ven_id, "registration_id": "registration-1"} if known[ven_id] else None

    answers: list[Any] = []

    async def opted(ven_id: str, event_id: str, opt_type: str) -> None:
        answers.append(opt_type)

    async def scenario() -> OpenAdrVen:
        vtn = OpenADRServer(
            vtn_id="utility-vtn",
            http_host="127.0.0.1",
            http_port=port,
            requested_poll_freq=timedelta(seconds=1),
            ven_lookup=lookup,
        )
        vtn.add_handler("on_create_party_registration", register)
        await vtn.run_async()
        settings = VenSettings(f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "lightson-ven")
        ven = OpenAdrVen(service, settings, clock, backoff=Backoff(0.05, 0.1), rng=random.Random(2))
        try:
            await ven.start()
            async with asyncio.timeout(30):
                while ven.status.registered_at is None:
                    await asyncio.sleep(0.05)
                known["ven-1"] = False  # the VTN restarted and forgot us
                while len(registrations) < 3 or known["ven-1"] is False:
                    await asyncio.sleep(0.05)
                vtn.add_event(
                    ven_id="ven-1",
                    signal_name="simple",
                    signal_type="level",
                    intervals=[
                        {
                            "dtstart": EVENT_START,
                            "duration": timedelta(hours=3),
                            "signal_payload": 1,
                        }
                    ],
                    callback=opted,
                    event_id="ev-2",
                    market_context="http://utility.example/cs-ci-daily",
                )
                while not answers:
                    await asyncio.sleep(0.05)
        finally:
            await ven.stop()
            await vtn.stop()
            store.close()
        return ven

    ven = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert registrations == [True, False, True]
    assert answers == ["optIn"]
    assert ven.status.attempts == 2  # the first, and one after the loss
    assert ven.status.last_error == "the VTN dropped our registration"
