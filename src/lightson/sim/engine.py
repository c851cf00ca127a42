"""Step one site through its world on a simulated clock with a controller.

Each step of ``program.step``: observe (battery energy, plug state, load, PV), ask the
controller for setpoints, clamp them with ``control.safety``, then apply the battery
physics and the trips, and meter the site (PV surplus leaves through the PV system's own
interconnection; the safety layer keeps vehicles from adding to it without permission).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

import numpy as np
from numpy.typing import NDArray

from lightson.control.controllers import CONTROLLERS, ControlContext, Controller
from lightson.control.grid import GridMonitor, GridSignal
from lightson.control.step import decide
from lightson.domain.assets import Program, Site, Vehicle
from lightson.domain.demand_response import DREvent
from lightson.domain.failures import FailureCause
from lightson.domain.state import SiteForecast, SiteObservation
from lightson.forecast.month_peak import MonthPeakFloor
from lightson.physics.battery import next_energy_kwh
from lightson.physics.trips import TripSchedule
from lightson.sim.availability import TwinAvailability, window_of
from lightson.sim.failures import CAUSE_CODES
from lightson.sim.world import DEFAULT_WORLD, SiteWorld, WorldOptions, build_world


@dataclass(frozen=True, eq=False)
class SiteRun:
    """Interval data of one simulated site. Vehicle arrays are ``[vehicle, step]``;
    ``energy_kwh`` is at the end of each step; power signs as everywhere (+ charges)."""

    site_id: str
    controller: str
    start: datetime
    step: timedelta
    vehicle_ids: tuple[str, ...]
    evse_ids: tuple[str, ...]
    load_kw: NDArray[np.float64]
    pv_kw: NDArray[np.float64]
    net_kw: NDArray[np.float64]
    load_served_kw: NDArray[np.float64]
    pv_curtailed_kw: NDArray[np.float64]
    in_outage: NDArray[np.bool_]
    critical_unserved_kw: NDArray[np.float64]
    in_event: NDArray[np.bool_]
    power_kw: NDArray[np.float64]
    energy_kwh: NDArray[np.float64]
    plugged: NDArray[np.bool_]
    trip_energy_kwh: NDArray[np.float64]
    unserved_trip_kwh: NDArray[np.float64]
    departure_short_kwh: NDArray[np.float64]
    interventions: int
    plans_made: int
    # Each vehicle's energy before the first step; None: the program file's initial_soc.
    initial_energy_kwh: NDArray[np.float64] | None = None
    # The twin's failures (lightson.sim.failures): cause code per vehicle and step (0: none;
    # None: a world without failures) and the events the site opted out of.
    failure_cause: NDArray[np.int8] | None = None
    opted_out: frozenset[str] = frozenset()

    @property
    def n_steps(self) -> int:
        return int(self.load_kw.shape[0])

    @property
    def step_h(self) -> float:
        return self.step.total_seconds() / 3600


def simulate_site(
    program: Program,
    site_id: str,
    controller_name: str,
    start: datetime,
    n_steps: int,
    seed: int = 0,
    options: WorldOptions = DEFAULT_WORLD,
) -> SiteRun:
    """Simulate ``site_id`` for ``n_steps`` from ``start`` with the named controller (in the
    world ``options`` describe: the load forecaster, a truth that is not the profile)."""
    controller = CONTROLLERS.lookup(controller_name, "--controller")()
    site = program.site(site_id)
    horizon_steps = max(1, int(controller.horizon / program.step))
    world = build_world(program, site, start, n_steps, horizon_steps, seed, options)
    return _run(program, site, world, controller, horizon_steps)


def _run(
    program: Program, site: Site, world: SiteWorld, controller: Controller, horizon_steps: int
) -> SiteRun:
    n, dt = world.n_sim_steps, world.grid.step_h
    vehicles = site.vehicles
    energy = {v.vehicle_id: v.initial_soc * v.battery_kwh for v in vehicles}
    out = _Recorder(n, len(vehicles))
    out.in_event = world.grid.starts_within((e.start, e.end) for e in world.events)[:n]
    opted_out = world.failures.opted_out if world.failures else frozenset()
    # An owner who opts out of an event takes the site out of it: its controller never sees it.
    announced = _Announced(
        program, tuple(e for e in world.events if e.event_id not in opted_out), controller.foresight
    )
    down = _Downtime(site, world)
    trips = TwinAvailability(
        program,
        site,
        world.grid,
        horizon_steps,
        out.plugged,
        out.power,
        world.nominal_schedules,
        learn=world.options.availability == "learned",
        stated=world.options.stated_departures,
    )
    peak_kw, month = 0.0, None
    floor = MonthPeakFloor() if world.options.month_peak == "expected" else None
    # The program's outages reach the site as grid-loss signals from its meter.
    mine = [o for o in program.outages if site.site_id in o.site_ids]
    grid_state = GridMonitor()
    signals = sorted(
        [(o.start, 0, o, GridSignal.LOST) for o in mine]
        + [(o.end, 1, o, GridSignal.RESTORED) for o in mine],
        key=lambda item: (item[0], item[1]),
    )
    for k in range(n):
        now = world.grid.start + k * world.grid.step
        while signals and signals[0][0] <= now:
            at, _, outage, signal = signals.pop(0)
            if signal is GridSignal.RESTORED:  # the longest delay of what ends now wins
                grid_state.enter_service_delay = max(
                    o.enter_service_delay for o in mine if o.end == at
                )
            grid_state.report(f"meter:{outage.outage_id}", signal, at)
        local_month = now.astimezone(program.timezone).month
        if local_month != month:
            peak_kw, month = 0.0, local_month
        plugged = {v.vehicle_id: not bool(world.schedules[v.vehicle_id].away[k]) for v in vehicles}
        # A faulted or silent charger's vehicle is not there for the platform.
        seen = {v: p and not down.out(i, k) for i, (v, p) in enumerate(plugged.items())}
        observation = SiteObservation(
            now,
            dict(energy),
            seen,
            float(world.load_kw[k]),
            float(world.pv_kw[k]),
            peak_so_far_kw=peak_kw,
        )
        # The trip about to leave (even late) and its scheduled energy set the floor.
        next_trip = {v: float(s.next_trip_kwh[k]) for v, s in world.schedules.items()}
        if world.failures:  # a summer route counts from its notice on
            next_trip = {v: float(e[k]) for v, e in world.failures.next_trip_kwh.items()}
        islanded = grid_state.islanded(now)
        released: frozenset[str] = frozenset()
        if islanded:
            # Released reserves stay released until the site is back in parallel.
            back_at = grid_state.resync_at() and grid_state.restored_at
            islanded_by = [o for o in mine if o.start <= now and (o.end > now or o.end == back_at)]
            # The operator may release a bus's route reserve for this outage.
            released = frozenset().union(*(o.released_vehicles for o in islanded_by))
        safe = decide(
            site,
            observation,
            next_trip,
            dt,
            now + world.grid.step,
            controller=controller,
            context=partial(
                _context,
                program,
                site,
                world,
                controller,
                k,
                horizon_steps,
                announced,
                trips,
                floor,
            ),
            islanded=islanded,
            released_vehicles=released,
        )
        observation = safe.observation
        out.in_outage[k] = islanded
        out.critical_unserved[k] = safe.critical_unserved_kw
        power = {s.evse_id: s.power_kw for s in safe.setpoints}
        for i, v in enumerate(vehicles):
            if plugged[v.vehicle_id] and down.out(i, k):
                # Islanded, nothing charges from the island (the CSMS's islanded default).
                fallback_kw = down.power_kw(i, k, energy[v.vehicle_id], dt)
                power[v.evse_id] = 0.0 if islanded else fallback_kw
        out.served[k] = observation.load_kw
        for i, v in enumerate(vehicles):
            trip_kwh = float(world.schedules[v.vehicle_id].trip_energy_kwh[k])
            before = energy[v.vehicle_id]
            after = next_energy_kwh(
                before, power[v.evse_id], dt, v.charge_efficiency, v.discharge_efficiency, trip_kwh
            )
            out.vehicle(
                i,
                k,
                power[v.evse_id],
                max(after, 0.0),
                plugged[v.vehicle_id],
                trip_kwh,
                max(-after, 0.0),
            )
            out.departure_short[i, k] = _departure_short(v, world.schedules[v.vehicle_id], k, after)
            energy[v.vehicle_id] = max(after, 0.0)
        net_kw = float(observation.load_kw - world.pv_kw[k] + sum(power.values()))
        if out.in_outage[k]:  # no grid: what neither load nor vehicles take is curtailed
            out.curtailed[k], net_kw = max(-net_kw, 0.0), 0.0
        out.net[k] = net_kw
        out.interventions += len(safe.interventions)
        peak_kw = max(peak_kw, net_kw)
    return out.finish(site, controller, world)


class _Downtime:
    """What a charger out of service does: a faulted one nothing; one that lost its link to
    the platform falls back to its charge-only default profile (DOMAIN.md: charge-only, no
    discharge), i.e. charges at full power until the battery is full."""

    def __init__(self, site: Site, world: SiteWorld) -> None:
        self._site = site
        self._cause = world.failures.cause if world.failures else None
        self._fault = CAUSE_CODES[FailureCause.FAULT]
        self._comms = CAUSE_CODES[FailureCause.COMMS]

    def out(self, i: int, k: int) -> bool:
        return self._cause is not None and int(self._cause[i, k]) in (self._fault, self._comms)

    def power_kw(self, i: int, k: int, energy_kwh: float, dt_h: float) -> float:
        assert self._cause is not None
        if int(self._cause[i, k]) != self._comms:
            return 0.0
        vehicle = self._site.vehicles[i]
        charger = self._site.charger(vehicle.evse_id)
        room_kw = (vehicle.max_energy_kwh - energy_kwh) / (vehicle.charge_efficiency * dt_h)
        return max(min(vehicle.max_charge_kw, charger.max_charge_kw, room_kw), 0.0)


def _context(
    program: Program,
    site: Site,
    world: SiteWorld,
    controller: Controller,
    k: int,
    horizon_steps: int,
    announced: _Announced,
    trips: TwinAvailability,
    floor: MonthPeakFloor | None,
    observation: SiteObservation,
) -> ControlContext:
    window = slice(k, k + horizon_steps)
    if controller.foresight:
        forecast = SiteForecast(world.load_kw[window], world.pv_kw[window])
        schedules: dict[str, TripSchedule] | None = {
            v: window_of(s, window) for v, s in world.schedules.items()
        }
    else:
        forecast = SiteForecast(
            world.load_forecast_kw(k, horizon_steps),
            world.forecast_pv_kw[window],
            world.load_peak_forecast_kw(k, horizon_steps),
        )
        schedules = trips.schedules(k)  # learned or scheduled, as in the live loop
    return ControlContext(
        announced.at(observation.now),
        site,
        observation,
        forecast,
        schedules,
        trips.departures(observation.now),
        floor.kw(program, site, observation.now) if floor else 0.0,
    )


class _Announced:
    """The program as a controller sees it as the simulated clock runs forward: with the
    site's events announced so far (all of them, with foresight). The view is rebuilt only
    when an announcement passes, not at every step."""

    def __init__(self, program: Program, events: tuple[DREvent, ...], foresight: bool) -> None:
        self._program, self._events = program, events
        pending = [] if foresight else [e.announced_at for e in events if e.announced_at]
        self._pending = sorted(pending, reverse=True)  # the next announcement last
        self._view = replace(
            program, events=events if foresight else tuple(e for e in events if not e.announced_at)
        )

    def at(self, now: datetime) -> Program:
        if self._pending and self._pending[-1] <= now:
            while self._pending and self._pending[-1] <= now:
                self._pending.pop()
            self._view = replace(
                self._program, events=tuple(e for e in self._events if e.known_at(now))
            )
        return self._view


def _departure_short(vehicle: Vehicle, truth: TripSchedule, k: int, energy_kwh: float) -> float:
    """kWh by which the battery misses its target when a trip actually leaves at the end of
    step ``k`` (0 otherwise). The target is what the driver asked for: the scheduled trip's
    energy plus the departure floor (the actual trip may use more or less)."""
    planned_kwh = float(truth.departure_trip_kwh[k])
    if planned_kwh <= 0:
        return 0.0
    need = min(
        planned_kwh + vehicle.departure_floor_soc * vehicle.battery_kwh, vehicle.max_energy_kwh
    )
    return max(need - energy_kwh, 0.0)


class _Recorder:
    def __init__(self, n: int, n_vehicles: int) -> None:
        self.net = np.zeros(n)
        self.served = np.zeros(n)
        self.curtailed = np.zeros(n)
        self.in_outage = np.zeros(n, dtype=bool)
        self.critical_unserved = np.zeros(n)
        self.in_event = np.zeros(n, dtype=bool)
        self.power = np.zeros((n_vehicles, n))
        self.energy = np.zeros((n_vehicles, n))
        self.plugged = np.zeros((n_vehicles, n), dtype=bool)
        self.trip = np.zeros((n_vehicles, n))
        self.unserved = np.zeros((n_vehicles, n))
        self.departure_short = np.zeros((n_vehicles, n))
        self.interventions = 0

    def vehicle(
        self,
        i: int,
        k: int,
        power_kw: float,
        energy_kwh: float,
        plugged: bool,
        trip_kwh: float,
        unserved_kwh: float,
    ) -> None:
        self.power[i, k], self.energy[i, k], self.plugged[i, k] = power_kw, energy_kwh, plugged
        self.trip[i, k], self.unserved[i, k] = trip_kwh, unserved_kwh

    def finish(self, site: Site, controller: Controller, world: SiteWorld) -> SiteRun:
        return SiteRun(
            site_id=site.site_id,
            controller=controller.name,
            start=world.grid.start,
            step=world.grid.step,
            vehicle_ids=tuple(v.vehicle_id for v in site.vehicles),
            evse_ids=tuple(v.evse_id for v in site.vehicles),
            load_kw=world.load_kw[: world.n_sim_steps],
            pv_kw=world.pv_kw[: world.n_sim_steps],
            net_kw=self.net,
            load_served_kw=self.served,
            pv_curtailed_kw=self.curtailed,
            in_outage=self.in_outage,
            critical_unserved_kw=self.critical_unserved,
            in_event=self.in_event,
            power_kw=self.power,
            energy_kwh=self.energy,
            plugged=self.plugged,
            trip_energy_kwh=self.trip,
            unserved_trip_kwh=self.unserved,
            departure_short_kwh=self.departure_short,
            interventions=self.interventions,
            plans_made=int(getattr(controller, "plans_made", 0)),
            failure_cause=(
                world.failures.cause[:, : world.n_sim_steps] if world.failures else None
            ),
            opted_out=world.failures.opted_out if world.failures else frozenset(),
        )
