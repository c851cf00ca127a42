"""The live control loop: every few minutes, and at once when something changes, each site
re-plans and its setpoints go to the chargers.

One tick of a site:

1. **Observe** from the database what the CSMS stored: each vehicle's state of charge and
   whether it is plugged (an open transaction at its charger). Building load and PV come
   from the site's profiles until a site meter feeds them (``docs/operations.md``).
2. **Decide** with the same code the simulator runs (``control.step.decide``): the site's
   controller on the grid, the islanded dispatch in an outage, then the safety layer.
3. **Send** each setpoint to its charger through the CSMS and record the answers.

Mapping: each charger of the program file is one charging station whose OCPP identity is the
charger's ``evse_id``; the vehicle assigned to that charger is the one plugged there.

Fallback: when a plugged vehicle's state of charge is unknown or older than
``stale_after``, the site does not plan on a guess. Its setpoint profiles are cleared, so
the charge-only default profile every charger got at boot applies (charge at the rating,
never discharge), and the site's status says why. The same happens to one charger whose
station stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from lightson.control.backup import BackupEstimate, backup_estimate
from lightson.control.controllers import CONTROLLERS, ControlContext, Controller
from lightson.control.grid import GridMonitor, GridSignal
from lightson.control.safety import Intervention
from lightson.control.step import decide
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.plan import Plan, Setpoint
from lightson.domain.state import SiteObservation
from lightson.domain.time import Clock, TimeGrid
from lightson.forecast.profiles import profile_forecast, profile_peak_so_far_kw
from lightson.physics.trips import trip_schedule
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.live import StationState, station_states

LOGGER = logging.getLogger("lightson.live")
DEFAULT_EVERY = timedelta(minutes=5)
DEFAULT_STALE_AFTER = timedelta(minutes=15)

Mode = Literal["grid", "islanded", "fallback", "starting"]


class SetpointSink(Protocol):
    """Where setpoints go (the CSMS). Answers are the station's status (``Accepted``, ...)."""

    async def send_setpoint(
        self, station_id: str, evse_id: int, setpoint: Setpoint, transaction_id: str | None = None
    ) -> str: ...

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str: ...


@dataclass(frozen=True)
class SiteStatus:
    """What a site did at its last tick, and why (shown on the dashboard)."""

    site_id: str
    at: datetime
    mode: Mode
    reason: str
    setpoints: tuple[Setpoint, ...] = ()
    answers: Mapping[str, str] = field(default_factory=dict)  # by evse_id
    interventions: tuple[Intervention, ...] = ()
    critical_unserved_kw: float = 0.0
    load_kw: float = 0.0
    pv_kw: float = 0.0
    soc: Mapping[str, float | None] = field(default_factory=dict)  # by vehicle_id
    plugged: Mapping[str, bool] = field(default_factory=dict)

    @property
    def vehicles_kw(self) -> float:
        return sum(s.power_kw for s in self.setpoints)


@dataclass
class _Site:
    site: Site
    controller: Controller
    grid: GridMonitor = field(default_factory=GridMonitor)
    released: frozenset[str] = frozenset()
    peak: tuple[int, float] | None = None  # (month, kW)


class LiveControl:
    """The control loop of every site of ``program``. ``events`` gives the demand-response
    events each site should plan for (from the event book); called at every tick."""

    def __init__(
        self,
        program: Program,
        store: Store,
        sink: SetpointSink,
        clock: Clock,
        events: Callable[[Site], Sequence[DREvent]] = lambda _site: (),
        *,
        controller: str = "v2x-mpc",
        every: timedelta = DEFAULT_EVERY,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> None:
        if every <= timedelta(0):
            raise ValueError("every must be positive")
        make = CONTROLLERS.lookup(controller, "--controller")
        self.program = program
        self.store = store
        self.sink = sink
        self.clock = clock
        self.events = events
        self.every = every
        self.stale_after = stale_after
        self._sites = {s.site_id: _Site(s, make()) for s in program.sites}
        self.status: dict[str, SiteStatus] = {
            s.site_id: SiteStatus(s.site_id, clock.now(), "starting", "no tick yet")
            for s in program.sites
        }
        self._wake = asyncio.Event()
        self._woken_for: set[str] = set()
        self.ticks = 0
        self._replay_grid_signals()

    # --- what changes the plan at once ----------------------------------------------------

    def wake(self, site_id: str | None = None) -> None:
        """Re-plan now (``None``: every site): a plug-in, an event, an outage."""
        self._woken_for.update(self._sites if site_id is None else [site_id])
        self._wake.set()

    def report_grid(
        self,
        site_id: str,
        source: str,
        signal: GridSignal,
        at: datetime | None = None,
        released_vehicles: frozenset[str] = frozenset(),
    ) -> None:
        """A grid loss or restoration at a site (its meter, a charger, an operator).
        ``released_vehicles`` may go below their trip reserve while the site is islanded."""
        live = self._site(site_id)
        at = at or self.clock.now()
        row = {
            "site_id": site_id,
            "source": source,
            "signal": signal.value,
            "at": at,
            "released_vehicles": sorted(released_vehicles),
        }
        self.store.write([(db.grid_signals, row)]).result(30)  # kept before it counts
        self._apply(live, source, signal, at, released_vehicles)
        self.wake(site_id)

    def _apply(
        self,
        live: _Site,
        source: str,
        signal: GridSignal,
        at: datetime,
        released_vehicles: frozenset[str],
    ) -> None:
        live.grid.report(source, signal, at)
        if signal is GridSignal.LOST:
            live.released |= released_vehicles

    def _replay_grid_signals(self) -> None:
        """A restarted server knows which sites are islanded: the stored signals, in order."""
        for row in self.store.rows(db.grid_signals):
            live = self._sites.get(row["site_id"])
            if live is not None:
                self._apply(
                    live,
                    row["source"],
                    GridSignal(row["signal"]),
                    row["at"],
                    frozenset(row["released_vehicles"]),
                )

    def islanded(self, site_id: str) -> bool:
        return self._site(site_id).grid.islanded(self.clock.now())

    def site(self, site_id: str) -> Site:
        return self._site(site_id).site

    def plan(self, site_id: str) -> Plan | None:
        """The plan the site's controller follows (``None``: none yet, or no plan-based
        controller)."""
        controller = self._site(site_id).controller
        return getattr(controller, "last_plan", None)

    def backup(self, site_id: str, horizon: timedelta = timedelta(hours=24)) -> BackupEstimate:
        """Hours of backup by tier if the grid went down now, from the last readings."""
        live = self._site(site_id)
        site, now = live.site, self.clock.now()
        status = self.status[site_id]
        observation = SiteObservation(
            now,
            {
                v.vehicle_id: _or(status.soc.get(v.vehicle_id), 0.0) * v.battery_kwh
                for v in site.vehicles
            },
            dict(status.plugged),
            status.load_kw,
            status.pv_kw,
        )
        steps = max(1, int(horizon / self.program.step))
        forecast = profile_forecast(
            self.program, site, TimeGrid(self._step_start(now), steps, self.program.step)
        )
        step_h = self.program.step.total_seconds() / 3600
        next_trip = {  # a route reserve released for this outage is backup too
            v: kwh for v, kwh in self._next_trip_kwh(site, now).items() if v not in live.released
        }
        return backup_estimate(
            site, observation, forecast.load_kw, forecast.pv_kw, step_h, next_trip
        )

    def _site(self, site_id: str) -> _Site:
        try:
            return self._sites[site_id]
        except KeyError:
            raise KeyError(f"no site '{site_id}' in program {self.program.name}") from None

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, speed: float = 1.0) -> None:
        """Tick every site, then wait ``every`` (of the clock's time, which runs ``speed``
        times faster than the wall) or until woken; forever."""
        await self.tick_all()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every.total_seconds() / speed)
            if self._wake.is_set():
                self._wake.clear()
                woken, self._woken_for = self._woken_for, set()
                for site_id in sorted(woken):
                    await self.tick(site_id)
            else:
                await self.tick_all()

    async def tick_all(self) -> list[SiteStatus]:
        return [await self.tick(site_id) for site_id in self._sites]

    async def tick(self, site_id: str) -> SiteStatus:
        """Observe, decide and send for one site; its status says what happened."""
        live = self._site(site_id)
        site, now = live.site, self.clock.now()
        # Database reads and the solver run off the event loop: the CSMS keeps answering.
        states = await asyncio.to_thread(
            station_states, self.store, [c.evse_id for c in site.chargers]
        )
        self.ticks += 1
        forecast_now = profile_forecast(self.program, site, TimeGrid(self._step_start(now), 1))
        load_kw, pv_kw = float(forecast_now.load_kw[0]), float(forecast_now.pv_kw[0])
        soc = {v.vehicle_id: states[v.evse_id].soc for v in site.vehicles}
        plugged = {v.vehicle_id: states[v.evse_id].plugged for v in site.vehicles}
        base = SiteStatus(
            site_id, now, "fallback", "", load_kw=load_kw, pv_kw=pv_kw, soc=soc, plugged=plugged
        )
        stale = self._stale(site, states, now)
        if stale:
            answers = {c.evse_id: await self._clear(c.evse_id) for c in site.chargers}
            status = replace(base, reason=stale, answers=answers)
            self.status[site_id] = status
            return status
        observation = SiteObservation(
            now,
            {
                # Away: its last reading (it may return with less) or the program's guess.
                v.vehicle_id: _or(soc[v.vehicle_id], v.initial_soc) * v.battery_kwh
                for v in site.vehicles
            },
            plugged,
            load_kw,
            pv_kw,
            peak_so_far_kw=self._peak(live, now),
        )
        step_h = self.program.step.total_seconds() / 3600
        islanded = live.grid.islanded(now)
        if not islanded:  # released reserves stay released until the site is parallel again
            live.released = frozenset()
        decision = await asyncio.to_thread(
            decide,
            site,
            observation,
            self._next_trip_kwh(site, now),
            step_h,
            now + 2 * self.every,  # one missed tick is covered; then the default applies
            controller=live.controller,
            context=lambda seen: self._context(live, seen),
            islanded=islanded,
            released_vehicles=live.released,
        )
        answers = {}
        for setpoint in decision.setpoints:
            transaction = states[setpoint.evse_id]
            answers[setpoint.evse_id] = await self._send(setpoint.evse_id, setpoint, transaction)
        status = replace(
            base,
            mode="islanded" if islanded else "grid",
            reason=_reason(islanded, answers, decision.interventions),
            setpoints=decision.setpoints,
            answers=answers,
            interventions=decision.interventions,
            critical_unserved_kw=decision.critical_unserved_kw,
            load_kw=decision.observation.load_kw,
        )
        self.status[site_id] = status
        return status

    # --- pieces ---------------------------------------------------------------------------

    def _stale(self, site: Site, states: Mapping[str, StationState], now: datetime) -> str:
        """Why the site cannot be planned (empty: it can)."""
        for vehicle in site.vehicles:
            state = states[vehicle.evse_id]
            if not state.plugged:
                continue
            if state.soc is None or state.soc_at is None:
                return f"no state of charge from {vehicle.evse_id} for {vehicle.vehicle_id}"
            if now - state.soc_at > self.stale_after:
                age_min = (now - state.soc_at).total_seconds() / 60
                return f"no meter values from {vehicle.evse_id} for {age_min:.0f} min"
        return ""

    def _step_start(self, now: datetime) -> datetime:
        step = self.program.step
        return now - (now - now.replace(minute=0, second=0, microsecond=0)) % step

    def _context(self, live: _Site, observation: SiteObservation) -> ControlContext:
        site = live.site
        steps = max(1, int(live.controller.horizon / self.program.step))
        grid = TimeGrid(self._step_start(observation.now), steps, self.program.step)
        known = tuple(e for e in self.events(site) if e.known_at(observation.now))
        return ControlContext(
            replace(self.program, events=known),
            site,
            observation,
            profile_forecast(self.program, site, grid),
        )

    def _next_trip_kwh(self, site: Site, now: datetime) -> dict[str, float]:
        grid = TimeGrid(self._step_start(now), 1, self.program.step)
        return {
            v.vehicle_id: float(
                trip_schedule(v.trips, grid, self.program.timezone).next_trip_kwh[0]
            )
            for v in site.vehicles
        }

    def _peak(self, live: _Site, now: datetime) -> float:
        """The month's import peak so far (from the profiles until a site meter reports)."""
        month = now.astimezone(self.program.timezone).month
        if live.peak is None or live.peak[0] != month:
            live.peak = (month, profile_peak_so_far_kw(self.program, live.site, now))
        return live.peak[1]

    async def _send(self, station_id: str, setpoint: Setpoint, state: StationState) -> str:
        try:
            return await self.sink.send_setpoint(
                station_id, state.evse_id or 1, setpoint, state.transaction_id
            )
        except Exception as error:  # an offline station must not stop the other sites
            LOGGER.warning("%s: setpoint not sent: %s", station_id, error)
            return f"not sent: {error}"

    async def _clear(self, station_id: str) -> str:
        try:
            return await self.sink.clear_profiles(station_id)
        except Exception as error:
            LOGGER.warning("%s: profiles not cleared: %s", station_id, error)
            return f"not cleared: {error}"


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _reason(
    islanded: bool, answers: Mapping[str, str], interventions: Sequence[Intervention]
) -> str:
    parts = ["islanded: serving the building from the vehicles" if islanded else "on plan"]
    refused = sorted(evse for evse, answer in answers.items() if answer != "Accepted")
    if refused:
        parts.append("not accepted by " + ", ".join(f"{e} ({answers[e]})" for e in refused))
    if interventions:
        parts.append(f"{len(interventions)} setpoint(s) clamped by safety rules")
    return "; ".join(parts)
