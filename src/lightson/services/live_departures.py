"""What the plugged vehicles need, read for a site's tick (``services.live``): which of them
cannot be planned (no fresh state of charge of this session), the departures asked for
(the owner's, else what the vehicle said over ISO 15118) and each vehicle's trips on the
plan's grid (learned from its sessions where it has enough, ``services.availability``, else
the program file's schedule), moved by the departure asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from lightson.domain.assets import Site, Vehicle
from lightson.domain.time import TimeGrid
from lightson.physics.trips import (
    LOOKAHEAD,
    TripSchedule,
    lay_trips,
    occurrences,
    trip_schedule,
    with_departure,
)
from lightson.services.availability import LearnedAvailability
from lightson.services.departures import next_departures
from lightson.store import Store
from lightson.store.live import StationState

# A reading stamped a moment before its session's Started event (a charger taking the SoC
# as the cable goes in) is this session's.
SESSION_CLOCK_SLACK = timedelta(seconds=60)
Departures = dict[str, tuple[datetime, float | None]]  # vehicle_id -> (when, need above floor)


def stale_vehicles(
    site: Site, states: Mapping[str, StationState], now: datetime, stale_after: timedelta
) -> dict[Vehicle, str]:
    """The plugged vehicles that cannot be planned, each with the reason."""
    stale: dict[Vehicle, str] = {}
    for vehicle in site.vehicles:
        state = states[vehicle.evse_id]
        if not state.plugged:
            continue
        if state.soc is None or state.soc_at is None:
            stale[vehicle] = f"no state of charge from {vehicle.evse_id} for {vehicle.vehicle_id}"
        elif state.started_at is not None and state.soc_at < state.started_at - SESSION_CLOCK_SLACK:
            stale[vehicle] = f"no state of charge from {vehicle.evse_id} since its session started"
        elif now - state.soc_at > stale_after:
            age_min = (now - state.soc_at).total_seconds() / 60
            stale[vehicle] = f"no meter values from {vehicle.evse_id} for {age_min:.0f} min"
    return stale


def asked_departures(
    store: Store, site: Site, states: Mapping[str, StationState], now: datetime
) -> Departures:
    """The departures asked for, by vehicle: the owner's (``departures`` table) first,
    else what a plugged vehicle said over ISO 15118 (departure time and energy wanted),
    each as (when, energy to leave with above the departure floor or ``None``)."""
    asked: Departures = {}
    for vehicle in site.vehicles:
        state = states[vehicle.evse_id]
        if (
            not state.plugged
            or state.departure is None
            or state.departure <= now
            or state.needs_at is None
            # said by an earlier car at this charger, not the one plugged in now
            or (
                state.started_at is not None
                and state.needs_at < state.started_at - SESSION_CLOCK_SLACK
            )
        ):
            continue
        leave_kwh = None
        if state.needs_target_soc is not None:
            leave_kwh = state.needs_target_soc * vehicle.battery_kwh
        elif state.energy_request_kwh is not None and state.soc_at_needs is not None:
            # The request counts from the charge when it was made, not from now.
            leave_kwh = state.soc_at_needs * vehicle.battery_kwh + state.energy_request_kwh
        need = None
        if leave_kwh is not None:
            above_floor = leave_kwh - vehicle.departure_floor_soc * vehicle.battery_kwh
            need = round(above_floor * 2) / 2  # to 0.5 kWh: noise makes no new plan
        asked[vehicle.vehicle_id] = (state.departure, need)
    owners = next_departures(store, site.site_id, (v.vehicle_id for v in site.vehicles), now)
    for vehicle in site.vehicles:
        chosen = owners.get(vehicle.vehicle_id)
        if chosen is not None:
            need = None
            if chosen.target_soc is not None:
                need = (chosen.target_soc - vehicle.departure_floor_soc) * vehicle.battery_kwh
            asked[vehicle.vehicle_id] = (chosen.depart_at, need)
    return asked


def trip_schedules(
    site: Site,
    grid: TimeGrid,
    departures: Departures,
    now: datetime,
    tz: ZoneInfo,
    availability: LearnedAvailability | None,
) -> dict[str, TripSchedule]:
    """Each vehicle's trips on ``grid`` (learned from its sessions where it has enough,
    ``services.availability``), with the departure asked for where there is one."""
    usual = (
        availability.trips(site)
        if availability is not None
        else {v.vehicle_id: v.trips for v in site.vehicles}
    )
    schedules = {}
    for vehicle in site.vehicles:
        asked = departures.get(vehicle.vehicle_id)
        trips = usual.get(vehicle.vehicle_id, vehicle.trips)
        if asked is None:
            schedules[vehicle.vehicle_id] = trip_schedule(trips, grid, tz)
            continue
        first, last = grid.start - timedelta(days=2), grid.end + LOOKAHEAD
        found = occurrences(trips, first, last, tz)
        schedules[vehicle.vehicle_id] = lay_trips(
            with_departure(found, asked[0], asked[1], tz, now), grid
        )
    return schedules
