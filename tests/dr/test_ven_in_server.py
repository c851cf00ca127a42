"""The VEN inside ``lightson serve``'s server: started while the utility's VTN is down, it
keeps trying (short backoff here), registers once the VTN is up, takes an event for its
territory and the live loop plans the called site on it; ``/api/health`` says each step."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openleadr import OpenADRServer

from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.csms.server import CsmsSettings
from lightson.domain.assets import Site
from lightson.domain.demand_response import DREvent
from lightson.domain.time import SimClock
from lightson.dr.openadr import Backoff, VenSettings
from lightson.services.events import EventService
from lightson.services.plans import plans_made
from lightson.store import Store
from net_support import free_port

NOW = datetime(2030, 7, 15, 20, tzinfo=UTC)
EVENT_START = datetime(2030, 7, 16, 19, tzinfo=UTC)  # 15:00 in Boston, a Tuesday


async def _health(url: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


async def _until(condition: Any, what: str, limit_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(limit_s):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no {what} within {limit_s} s") from None


def test_a_ven_started_before_its_vtn_registers_when_it_comes_and_plans_on_its_event(
    tmp_path: Path,
) -> None:
    port = free_port()
    store = Store(f"sqlite:///{tmp_path / 'ven.db'}")
    server = OperationsServer(
        load_program("example"),
        store,
        SimClock(NOW),
        http_port=0,
        csms_settings=CsmsSettings(port=0),
        openadr=VenSettings(
            f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", "lightson-ven", "eversource"
        ),
        openadr_backoff=Backoff(first_s=0.05, max_s=0.2),
        openadr_rng=random.Random(15),
    )
    planned: list[tuple[str, list[str]]] = []  # what each site's tick planned on
    events_for = server.live.events

    def recording(site: Site) -> Sequence[DREvent]:
        events = events_for(site)
        planned.append((site.site_id, [e.event_id for e in events]))
        return events

    server.live.events = recording
    answers: list[tuple[str, str, str]] = []

    async def register(info: dict[str, Any]) -> tuple[str, str]:
        return "ven-1", "registration-1"

    async def opted(ven_id: str, event_id: str, opt_type: str) -> None:
        answers.append((ven_id, event_id, opt_type))

    async def scenario() -> None:
        async with server.running() as running:
            assert server.ven is not None
            status = server.ven.status
            await _until(lambda: status.attempts >= 3, "three refused attempts")
            down = (await _health(running.url))["dr"]
            vtn = OpenADRServer(
                vtn_id="utility-vtn",
                http_host="127.0.0.1",
                http_port=port,
                requested_poll_freq=timedelta(seconds=1),
            )
            vtn.add_handler("on_create_party_registration", register)
            await vtn.run_async()
            try:
                await _until(lambda: status.last_poll_at is not None, "a poll answered")
                plans_before = len(plans_made(store, "business-worcester", NOW))
                vtn.add_event(
                    ven_id="ven-1",
                    signal_name="simple",
                    signal_type="level",
                    intervals=[
                        {
                            "dtstart": EVENT_START,
                            "duration": timedelta(hours=3),
                            "signal_payload": 1.0,
                        }
                    ],
                    callback=opted,
                    event_id="ev-1",
                    market_context="http://utility.example/cs-ci-daily",
                )
                await _until(lambda: bool(answers), "the VEN's answer")
                await _until(
                    lambda: ("business-worcester", ["adr-ev-1"]) in planned, "a plan on it"
                )
                await _until(
                    lambda: len(plans_made(store, "business-worcester", NOW)) > plans_before,
                    "the plan stored",
                )
                up = await _health(running.url)
            finally:
                await vtn.stop()
        assert down["state"] == "registering"
        assert down["last_error"] == "no valid answer from the VTN to EiRegisterParty"
        assert down["registration_attempts"] >= 3 and down["next_attempt_at"] is not None
        assert up["status"] == "ok"
        assert up["dr"]["state"] == "registered"
        assert up["dr"]["utility"] == "eversource"
        assert (up["dr"]["events_received"], up["dr"]["events_refused"]) == (1, 0)
        assert up["dr"]["last_poll"] == NOW.isoformat()
        assert status.state.value == "stopped"  # stopped with the server

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        store.close()
    assert answers == [("ven-1", "ev-1", "optIn")]
    event = _stored_event(tmp_path / "ven.db")
    assert event == ("cs-ci-daily", ("business-worcester",), "openadr")
    # The school (National Grid, also in cs-ci-daily) is not Eversource's to call.
    assert all("adr-ev-1" not in ids for site, ids in planned if site == "school-beverly")


def _stored_event(store_path: Path) -> tuple[str, tuple[str, ...], str]:
    store = Store(f"sqlite:///{store_path}")
    try:
        event = EventService(store, SimClock(NOW)).book().events["adr-ev-1"]
    finally:
        store.close()
    return event.program_id, event.sites, event.source
