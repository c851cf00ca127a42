"""The live control loop: every few minutes, and at once when something changes, each site
re-plans and its setpoints go to the chargers.

One tick of a site:

1. **Observe** from the database what the CSMS stored: each vehicle's state of charge and
   whether it is plugged (an open transaction at its charger), and the departures asked for:
   the owner's next departure (``services.departures``), else the time and energy the
   vehicle itself asked for over ISO 15118 (``NotifyEVChargingNeeds``), each moving the day's
   usual trip; the usual trips are those learned from the vehicle's recorded sessions where
   its charger has enough (``services.availability``), else the program file's schedule.
   Building load and PV come from the site meter where one reports, else from the site's
   profiles.
2. **Decide** with the same code the simulator runs (``control.step.decide``): the site's
   controller on the grid, the islanded dispatch in an outage, then the safety layer, both
   with this tick's power limits (``services.limits``: the registered rating, what the
   vehicle declared, what its charger showed it accepts).
3. **Send** each setpoint to its charger through the CSMS and record the answers.

Mapping: each charger of the program file is one charging station whose OCPP identity is the
charger's ``evse_id``; the vehicle assigned to that charger is the one plugged there. A
charger with no open transaction gets nothing (its answer is ``idle``): a 0 kW default
profile would hold back a car that plugs in before the next tick.

Schedule: every site ticks at fixed times, on multiples of ``every`` of the clock; a site
woken in between (a plug-in, an event, an outage) ticks at once without moving the
schedule. A setpoint holds until two intervals after its tick (one missed tick is covered,
then the charge-only default applies), and the safety layer sizes the battery floor over
that whole time. When a pass over every site takes longer than ``every`` (a big program on
a small machine, or an accelerated clock), the interval is the whole number of ``every``
a pass takes.

Fallback: when a plugged vehicle's state of charge is unknown, older than ``stale_after``
or from before its session started, the site does not plan that vehicle on a guess. Its
charger's setpoint profiles are cleared, so the charge-only default profile every charger
got at boot applies (charge at the rating, never discharge); the rest of the site plans
around it, counting that charger at its full charging rating as load, and the status says
why. A site whose tick fails clears every charger's profiles the same way.

Parts: the loop (this module) stands on ``live_plans`` (the context a tick plans on, the
no-export view, plans kept), ``live_departures`` (stale vehicles, departures, trips),
``live_peaks`` (the month's import peak), ``live_sinks`` (where setpoints go, and sending
them) and ``live_status`` (what a tick did and why).

Export: where a site meter reports (``services.site_meter``: a reading at most 15 minutes
old), the loop plans on the metered building load and PV. Otherwise it knows them only from
the profiles, and at a site without export permission it assumes, for the no-export rule
only, that the building takes only its critical share of the forecast load and that PV gives
its rated output whenever the forecast has sun (``live_plans.no_export_view``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from lightson.control.backup import BackupEstimate, backup_estimate
from lightson.control.controllers import CONTROLLERS, ControlContext, Controller
from lightson.control.grid import GridMonitor, GridSignal
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.errors import UnknownNameError
from lightson.domain.plan import Plan, Setpoint
from lightson.domain.state import SiteObservation
from lightson.domain.telemetry import MeterSample
from lightson.domain.time import Clock, TimeGrid
from lightson.forecast.availability import DEFAULT_MIN_SESSIONS
from lightson.forecast.month_peak import MONTH_PEAK_CHOICES, MonthPeakFloor
from lightson.forecast.profiles import profile_forecast
from lightson.optimize.solve import prepare_highs
from lightson.physics.trips import (
    TripSchedule,
)
from lightson.services.availability import LearnedAvailability
from lightson.services.engines import DecisionEngine, DecisionRequest, InlineEngine
from lightson.services.forecasts import SiteForecasts
from lightson.services.limits import SessionLimits, limited_site
from lightson.services.live_departures import (
    SESSION_CLOCK_SLACK,
    Departures,
    asked_departures,
    stale_vehicles,
    trip_schedules,
)
from lightson.services.live_peaks import MonthPeak, month_peak
from lightson.services.live_plans import PlanKeeper, control_context, no_export_view
from lightson.services.live_sinks import SetpointDispatch, SetpointSink
from lightson.services.live_status import SiteStatus, fallback_reason, status_reason
from lightson.services.site_meter import latest_reading
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.live import (
    StationState,
    held_setpoints,
    station_states,
)
from lightson.store.transactions import recent_closings

LOGGER = logging.getLogger("lightson.live")
DEFAULT_EVERY = timedelta(minutes=5)
DEFAULT_STALE_AFTER = timedelta(minutes=15)
# An islanded site's setpoints hold this long, on and off line (2.1 maxOfflineDuration):
# long enough to cover a restart of the server, or a crash and a service manager's restart.
DEFAULT_ISLANDED_HOLD = timedelta(minutes=30)
DRIFT_SHARE = 0.05  # a battery 5 % of its capacity away from the plan: re-plan now


@dataclass
class _Site:
    site: Site
    controller: Controller
    grid: GridMonitor = field(default_factory=GridMonitor)
    released: frozenset[str] = frozenset()
    peak: MonthPeak | None = None
    # The peak the month is expected to reach anyway (``month_peak="expected"``), else None.
    floor: MonthPeakFloor | None = None


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
        keep_plans: timedelta | None = None,
        islanded_hold: timedelta = DEFAULT_ISLANDED_HOLD,
        owned: Iterable[str] | None = None,
        availability_min_sessions: int | None = DEFAULT_MIN_SESSIONS,
        forecasts: SiteForecasts | None = None,
        engine: DecisionEngine | None = None,
        month_peak: str = "expected",
    ) -> None:
        if month_peak not in MONTH_PEAK_CHOICES:
            raise UnknownNameError("month_peak", month_peak, MONTH_PEAK_CHOICES)
        if every <= timedelta(0):
            raise ValueError("every must be positive")
        if islanded_hold <= timedelta(0):
            raise ValueError("islanded_hold must be positive")
        factory = CONTROLLERS.lookup(controller, "--controller")
        # The solver runs in worker threads while the server prints (the dashboard's
        # address): HiGHS's banner, silenced at the file-descriptor level, goes now.
        prepare_highs()

        def make() -> Controller:
            made = factory()
            if hasattr(made, "drift_share"):  # the "large forecast error" trigger
                made.drift_share = DRIFT_SHARE
            return made

        self.program = program
        self.store = store
        self.clock = clock
        self.events = events
        self.every = every
        self.stale_after = stale_after
        self._plans = PlanKeeper(store, keep_plans)  # None: every plan is kept
        self.islanded_hold = islanded_hold
        # Vehicles with enough recorded sessions are planned on what they learned, the others
        # on the program file's schedule (None: always the schedule).
        self.availability = (
            None
            if availability_min_sessions is None
            else LearnedAvailability(store, program.timezone, availability_min_sessions)
        )
        self.forecasts = forecasts  # None: the profile for every site (#16)
        # Where decisions are computed (services.engines): a thread here, or Ray tasks.
        self.engine: DecisionEngine = engine or InlineEngine()
        self._awaiting_reading: set[str] = set()  # chargers whose vehicle was not planned
        self._site_of_station = {c.evse_id: s.site_id for s in program.sites for c in s.chargers}
        self._make_controller = make
        # How the controllers value the month's peak (forecast.month_peak, #16).
        self.month_peak = month_peak
        self._sites = {
            s.site_id: _Site(s, make(), floor=self._month_peak_floor()) for s in program.sites
        }
        # The sites this loop controls: every one in one process; a control worker's shard,
        # which moves with its leases (take_over, release).
        self._owned = (
            set(self._sites) if owned is None else {self._site(s).site.site_id for s in owned}
        )
        self.sessions = SessionLimits()  # what each charging session showed it accepts
        # What goes to the chargers, and the default each holds as far as we know.
        self._dispatch = SetpointDispatch(sink, store, clock, self.sessions, self.wake_station)
        self.status: dict[str, SiteStatus] = {
            s.site_id: SiteStatus(s.site_id, clock.now(), "starting", "no tick yet")
            for s in program.sites
        }
        self._wake = asyncio.Event()
        self._woken_for: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grid_lock = threading.Lock()  # the API reports outages from its worker threads
        self.ticks = 0
        self.last_tick_at: datetime | None = None  # when a site last finished a tick
        self.pass_time = timedelta(0)  # clock time the last pass over every site took
        self._pass: tuple[datetime, int] | None = None  # the pass under way: start, sites done
        # Told each new status of a site this loop controls (a control worker publishes it).
        self.status_changed: list[Callable[[SiteStatus], None]] = []
        self._replay_grid_signals()

    # --- which sites this loop controls ---------------------------------------------------

    def owns(self, site_id: str) -> bool:
        """Whether this loop controls ``site_id`` now (ticks it and sends its setpoints)."""
        return site_id in self._owned

    def owned(self) -> list[str]:
        """The sites this loop controls now, in program order."""
        return [s for s in self._sites if s in self._owned]

    def take_over(self, site_id: str) -> None:
        """Control ``site_id`` from now, continuing from what the database holds: its grid
        signals (islanded or not, vehicles released), its month's peak (read again at the
        next tick), and at each tick, as always, the sessions, readings, departures and
        limits the CSMS stored. Its controller starts afresh and plans at once from that
        state; what each charger holds is not known, so defaults go out again. The site
        ticks at once. Blocks on the database for a moment."""
        live = self._site(site_id)
        if site_id in self._owned:
            return
        fresh = _Site(live.site, self._make_controller(), floor=self._month_peak_floor())
        for row in self.store.rows(db.grid_signals):
            if row["site_id"] == site_id:
                self._apply(
                    fresh,
                    "api" if row["source"].startswith("api:") else row["source"],
                    GridSignal(row["signal"]),
                    row["at"],
                    frozenset(row["released_vehicles"]),
                )
        self._sites[site_id] = fresh
        for charger in live.site.chargers:
            self._dispatch.forget(charger.evse_id)
            self._awaiting_reading.discard(charger.evse_id)
        self.status[site_id] = SiteStatus(
            site_id, self.clock.now(), "starting", "taken over: no tick yet"
        )
        self._owned.add(site_id)
        self.wake(site_id)

    def release(self, site_id: str) -> None:
        """Stop controlling ``site_id`` (its lease went to another worker): no tick, no
        setpoint from here; a tick under way finishes, and its sends are refused."""
        self._site(site_id)
        self._owned.discard(site_id)
        self._woken_for.discard(site_id)
        self.status[site_id] = SiteStatus(
            site_id, self.clock.now(), "starting", "controlled by another worker"
        )

    # --- what changes the plan at once ----------------------------------------------------

    def wake(self, site_id: str | None = None) -> None:
        """Re-plan now (``None``: every site): a plug-in, an event, an outage. Safe to call
        from any thread (the API's routes run in worker threads)."""
        sites = self.owned() if site_id is None else [self._site(site_id).site.site_id]
        sites = [s for s in sites if s in self._owned]
        if not sites:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed() and _other_thread(loop):
            loop.call_soon_threadsafe(self._wake_now, sites)
        else:
            self._wake_now(sites)

    def wake_station(self, station_id: str) -> None:
        """Re-plan now the site of the charger ``station_id`` (none: nothing to do)."""
        site_id = self._site_of_station.get(station_id)
        if site_id is not None:
            self.wake(site_id)

    def station_islanded(self, station_id: str) -> bool:
        """Whether the charger ``station_id`` is at a site islanded now."""
        site_id = self._site_of_station.get(station_id)
        return site_id is not None and self.islanded(site_id)

    def reading_arrived(self, sample: MeterSample) -> None:
        """A charger sent a reading: if its vehicle could not be planned at the last tick
        (no fresh state of charge), its site plans again now."""
        if sample.soc is not None and sample.station_id in self._awaiting_reading:
            self._awaiting_reading.discard(sample.station_id)
            self.wake_station(sample.station_id)

    def station_connected(self, station_id: str) -> None:
        """A station's session opened (it booted, its link came back, or we restarted): what
        it holds is not known, so its site re-sends its default and setpoints now."""
        self._dispatch.forget(station_id)
        self.wake_station(station_id)

    def site_event(self, site_id: str, kind: str, station_id: str | None = None) -> None:
        """A gateway stored what a station of ``site_id`` sent (a control worker hears it on
        the bus; the data is read from the database at the tick). ``connected``: the
        station's default is sent again; ``meter``: the site ticks if that station's vehicle
        waits for a reading; anything else (``needs``): the site ticks. Without
        ``station_id`` each charger of the site counts. Not this loop's site: nothing."""
        if site_id not in self._owned:
            return
        stations = [station_id] if station_id else [c.evse_id for c in self.site(site_id).chargers]
        if kind == "meter":
            waiting = [s for s in stations if s in self._awaiting_reading]
            if not waiting:
                return
            self._awaiting_reading.difference_update(waiting)
        elif kind == "connected":
            for station in stations:
                self._dispatch.forget(station)
        self.wake(site_id)

    def _wake_now(self, sites: Sequence[str]) -> None:
        self._woken_for.update(sites)
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
        ``released_vehicles`` may go below their trip reserve while the site is islanded.
        It blocks until the signal is stored: from the event loop, call it in a thread."""
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
        with self._grid_lock:
            new_outage = signal is GridSignal.LOST and not live.grid.islanded(at)
            live.grid.report(source, signal, at)
            if new_outage:  # a release is for one outage: an earlier one's does not carry
                live.released = released_vehicles
            elif signal is GridSignal.LOST:
                live.released |= released_vehicles

    def _replay_grid_signals(self) -> None:
        """A restarted server knows which sites are islanded: the stored signals, in order."""
        for row in self.store.rows(db.grid_signals):
            live = self._sites.get(row["site_id"])
            if live is not None:
                self._apply(
                    live,
                    # Before 2026-11-29 the API spoke as api:<user>; it is one source now.
                    "api" if row["source"].startswith("api:") else row["source"],
                    GridSignal(row["signal"]),
                    row["at"],
                    frozenset(row["released_vehicles"]),
                )

    def reload_grid(self, site_id: str) -> None:
        """Read the site's stored grid signals again (another process stored one: an API
        server, on a control worker). Blocks on the database for a moment."""
        live = self._site(site_id)
        fresh = _Site(live.site, live.controller, floor=live.floor)
        for row in self.store.rows(db.grid_signals, site_id=site_id):
            source = "api" if row["source"].startswith("api:") else row["source"]
            self._apply(
                fresh,
                source,
                GridSignal(row["signal"]),
                row["at"],
                frozenset(row["released_vehicles"]),
            )
        with self._grid_lock:
            live.grid, live.released = fresh.grid, fresh.released

    def islanded(self, site_id: str) -> bool:
        live = self._site(site_id)
        with self._grid_lock:
            return live.grid.islanded(self.clock.now())

    def _grid_now(self, live: _Site, now: datetime) -> tuple[bool, frozenset[str]]:
        """Islanded or not, and the vehicles released for this outage, read together (the
        API's threads report outages while a tick runs). A release ends with its outage."""
        with self._grid_lock:
            islanded = live.grid.islanded(now)
            return islanded, live.released if islanded else frozenset()

    def grid_losses(self, site_id: str) -> tuple[frozenset[str], datetime | None]:
        """The sources that report the grid lost at a site now, and when it re-syncs
        (``None``: it is not waiting to)."""
        live = self._site(site_id)
        with self._grid_lock:
            return frozenset(live.grid.lost_by), live.grid.resync_at()

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
        _, released = self._grid_now(live, now)
        next_trip = {  # a route reserve released for this outage is backup too
            v: kwh for v, kwh in self._next_trip_kwh(site, now).items() if v not in released
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
        """Tick every site now and then at each multiple of ``every`` of the clock (which runs
        ``speed`` times faster than the wall); woken sites tick at once in between. Forever:
        a failing site falls back on its own (``tick``) and the loop goes on."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._loop = asyncio.get_running_loop()
        await self.tick_all()
        due = self._next_due(self.clock.now())
        while True:
            wait_s = (due - self.clock.now()).total_seconds() / speed
            if wait_s > 0 and not self._wake.is_set():
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that arrives as it times out, and the loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
            if self._wake.is_set():
                self._wake.clear()
                woken, self._woken_for = self._woken_for, set()
                for site_id in sorted(woken):
                    await self.tick(site_id)
            if self.clock.now() >= due:
                await self.tick_all()
                due = self._next_due(self.clock.now())  # a pass that overran skips a time

    def _next_due(self, now: datetime) -> datetime:
        """The first multiple of ``every`` (counted from midnight UTC) after ``now``."""
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return now - (now - midnight) % self.every + self.every

    async def tick_all(self) -> list[SiteStatus]:
        started = self.clock.now()
        self._pass = (started, 0)
        # An engine that solves elsewhere (Ray) gets several sites at once: the burst of
        # re-plans when an event is announced spreads over its CPUs.
        gate = asyncio.Semaphore(max(1, self.engine.parallel))

        async def one(site_id: str) -> SiteStatus:
            async with gate:
                status = await self.tick(site_id)
            if self._pass is not None:
                self._pass = (started, self._pass[1] + 1)
            return status

        try:
            statuses = list(await asyncio.gather(*(one(s) for s in self.owned())))
        finally:
            self._pass = None
        self.pass_time = self.clock.now() - started
        if self.pass_time > self.every:
            LOGGER.warning(
                "a pass over %d sites took %.1f min of clock time, longer than every (%.1f min)",
                len(self._owned),
                self.pass_time.total_seconds() / 60,
                self.every.total_seconds() / 60,
            )
        return statuses

    async def tick(self, site_id: str) -> SiteStatus:
        """Observe, decide and send for one site; its status says what happened. A tick that
        fails leaves every charger of the site to its charge-only default."""
        live = self._site(site_id)
        if site_id not in self._owned:  # released since it was woken
            return self.status[site_id]
        try:
            status = await self._tick(live)
        except Exception as error:  # one site's fault must not stop the loop or the others
            reason = f"control error: {type(error).__name__}: {error}"[:300]
            if self.islanded(site_id):
                # Cleared, the chargers would drop to their default and the building would
                # go dark: the islanded setpoints they hold carry it until they expire, over
                # the 0 W default (sent now if the failure came before it was).
                LOGGER.exception("%s: tick failed; islanded, the chargers keep theirs", site_id)
                with contextlib.suppress(Exception):
                    await self._dispatch.ensure_defaults(live.site, True)
                status = SiteStatus(
                    site_id,
                    self.clock.now(),
                    "islanded",
                    f"{reason}; the chargers keep their islanded setpoints",
                )
            else:
                LOGGER.exception("%s: tick failed; its chargers fall back", site_id)
                answers = {
                    c.evse_id: await self._dispatch.clear(c.evse_id) for c in live.site.chargers
                }
                status = SiteStatus(
                    site_id,
                    self.clock.now(),
                    "fallback",
                    reason,
                    answers=answers,
                    fallback=tuple(answers),
                )
        if site_id in self._owned:  # not released while it ran
            self.status[site_id] = status
            for hook in self.status_changed:
                try:
                    hook(status)
                except Exception:  # a listener's fault is not the site's
                    LOGGER.exception("%s: a status listener failed", site_id)
        self.last_tick_at = self.clock.now()
        return status

    @property
    def pass_started(self) -> datetime | None:
        """When the pass over every site under way began (clock time); ``None`` between
        passes."""
        return None if self._pass is None else self._pass[0]

    def stalled(self, now: datetime) -> bool:
        """Whether the loop has ticked before and then stopped: no site finished a tick for
        three of its intervals (``every``, or a pass's time when passes take longer)."""
        last = self.last_tick_at
        return last is not None and now - last > 3 * max(self.every, self.pass_time)

    def hold(self) -> timedelta:
        """How long a setpoint holds after its tick: until the site's next tick, plus one
        missed. Ticks come every ``every``, or every few ``every`` when a pass over all the
        sites takes longer (the last pass's time, or this one's so far, projected)."""
        expected = max(self.every, self.pass_time)
        if self._pass is not None and self._pass[1] > 0:
            started, done = self._pass
            expected = max(expected, (self.clock.now() - started) * len(self._owned) / done)
        intervals = math.ceil(expected / self.every - 1e-9)
        return 2 * intervals * self.every

    async def _tick(self, live: _Site) -> SiteStatus:
        site, now = live.site, self.clock.now()
        # Database reads and the solver run off the event loop: the CSMS keeps answering.
        states = await asyncio.to_thread(
            station_states, self.store, [c.evse_id for c in site.chargers]
        )
        islanded, released = self._grid_now(live, now)
        # The limits of this tick (registered rating, what each vehicle declared, what its
        # charger showed it accepts) bound the plan and the safety layer alike.
        site, _ = await asyncio.to_thread(
            limited_site,
            site,
            states,
            self.store,
            self.sessions,
            now,
            SESSION_CLOCK_SLACK,
            islanded,
        )
        departures = await asyncio.to_thread(self._departures, site, states, now)
        if self.availability is not None:
            await asyncio.to_thread(self.availability.refresh, site, now)
        self.ticks += 1
        forecast_now = profile_forecast(self.program, site, TimeGrid(self._step_start(now), 1))
        load_kw, pv_kw = float(forecast_now.load_kw[0]), float(forecast_now.pv_kw[0])
        metered = await asyncio.to_thread(latest_reading, self.store, site.site_id, now)
        if metered is not None:  # the site's own meter beats its profile
            load_kw = metered.load_kw
            pv_kw = metered.pv_kw if metered.pv_kw is not None else pv_kw
        soc = {v.vehicle_id: states[v.evse_id].soc for v in site.vehicles}
        plugged = {v.vehicle_id: states[v.evse_id].plugged for v in site.vehicles}
        stale = stale_vehicles(site, states, now, self.stale_after)
        # A reading from one of these (a queue flushing after our restart, a charger back)
        # makes the site plan again at once rather than at its next tick.
        self._awaiting_reading.update(v.evse_id for v in stale)
        # Islanded, the setpoints (and 2.1's maxOfflineDuration) cover a restart of ours;
        # under them every charger holds the 0 W default, so nothing charges from the island.
        hold = max(self.hold(), self.islanded_hold) if islanded else self.hold()
        offline_s = int(hold.total_seconds()) if islanded else None
        valid_until = now + hold
        await self._dispatch.ensure_defaults(site, islanded)
        answers: dict[str, str] = {}
        default_kw = 0.0
        held_supply_kw = 0.0  # islanded: what silent chargers still give under held setpoints
        held = (
            await asyncio.to_thread(self._held, states, [v.evse_id for v in stale], now)
            if islanded and stale
            else {}
        )
        for vehicle in stale:
            if islanded and held.get(vehicle.evse_id, 1.0) <= 0.0:
                # It still holds an islanded setpoint of this session, sized for its battery
                # over the whole hold (after our restart, its queued readings may not be in
                # yet): left as it is; what it gives carries part of the load (never PV
                # surplus for the others to charge from).
                answers[vehicle.evse_id] = "held"
                held_supply_kw -= held[vehicle.evse_id]
            elif islanded:
                # The charge-only default would charge from the island: hold it at 0 kW.
                zero = Setpoint(vehicle.evse_id, 0.0, valid_until)
                answers[vehicle.evse_id] = await self._dispatch.send(
                    vehicle.evse_id, zero, states[vehicle.evse_id], offline_s
                )
            else:
                answers[vehicle.evse_id] = await self._dispatch.clear(vehicle.evse_id)
                # Left alone it may charge at its rating: the import check counts that.
                charger = site.charger(vehicle.evse_id)
                default_kw += min(vehicle.max_charge_kw, charger.max_charge_kw)
        base = SiteStatus(
            site.site_id,
            now,
            "fallback",
            "",
            load_kw=load_kw,
            pv_kw=pv_kw,
            soc=soc,
            plugged=plugged,
            fallback=tuple(v.evse_id for v in stale),
            load_source="meter" if metered is not None else "profile",
        )
        if stale and len(stale) == sum(plugged.values()) and not islanded:
            return replace(base, reason=fallback_reason(stale), answers=answers)
        export_check = None
        if not site.export_permitted and not islanded:
            # A charger left to its default may draw nothing (a full battery): not counted.
            cautious = no_export_view(site, load_kw, pv_kw)
            if metered is None:
                export_check = cautious
            elif metered.pv_kw is None and site.pv is not None:  # load metered, PV not
                export_check = (load_kw, cautious[1])
        peak_kw = await asyncio.to_thread(self._peak, live, now)
        observation = SiteObservation(
            now,
            {
                # Away: its last reading (it may return with less) or the program's guess.
                v.vehicle_id: _or(soc[v.vehicle_id], v.initial_soc) * v.battery_kwh
                for v in site.vehicles
            },
            {v: p and not any(s.vehicle_id == v for s in stale) for v, p in plugged.items()},
            load_kw + default_kw,
            pv_kw,
            peak_so_far_kw=peak_kw,
            export_check_kw=export_check,
        )
        plans_before = getattr(live.controller, "plans_made", 0)
        context = (
            None
            if islanded
            else await asyncio.to_thread(self._context, live, observation, departures, site)
        )
        request = DecisionRequest(
            site,
            observation,
            self._next_trip_kwh(site, now, departures),
            (valid_until - now).total_seconds() / 3600,  # the floor holds for all of it
            valid_until,
            live.controller,
            context,
            islanded=islanded,
            released_vehicles=released,
            held_supply_kw=held_supply_kw,
        )
        # Solved here (a thread) or on Ray: a Ray task sends back the controller with its
        # new plan, and the site keeps that one.
        decision, live.controller = await self.engine.decide(request)
        made = self.plan(site.site_id)
        if made is not None and getattr(live.controller, "plans_made", 0) != plans_before:
            await asyncio.to_thread(self._plans.keep, site.site_id, live.controller.name, made, now)
        for setpoint in decision.setpoints:
            state = states[setpoint.evse_id]
            if setpoint.evse_id in answers:
                continue  # left to its default profile above
            if not state.plugged:
                answers[setpoint.evse_id] = "idle"
                continue
            answers[setpoint.evse_id] = await self._dispatch.send(
                setpoint.evse_id, setpoint, state, offline_s
            )
            if (
                islanded
                and answers[setpoint.evse_id] != "Accepted"
                and self._dispatch.islanded_default(setpoint.evse_id)
            ):
                # It may still hold a charging setpoint from before the outage, above the
                # 0 W default: cleared, the default applies (only once that default is known
                # to be the 0 W one, else the charge-only default would).
                await self._dispatch.clear(setpoint.evse_id)
        tier = decision.tier.value if decision.tier is not None else None
        reason = status_reason(islanded, tier, answers, decision.interventions)
        if stale:
            reason = f"{reason}; {fallback_reason(stale)}"
        # A session the CSMS closed since the last tick (its station vanished): say why once.
        ids = [c.evse_id for c in site.chargers]
        closed = await asyncio.to_thread(recent_closings, self.store, ids, now - self.every)
        for station_id, why in closed.items():
            reason = f"{reason}; {station_id}: transaction {why}"
        return replace(
            base,
            mode="islanded" if islanded else "grid",
            reason=reason,
            setpoints=tuple(s for s in decision.setpoints if s.evse_id not in base.fallback),
            answers=answers,
            interventions=decision.interventions,
            critical_unserved_kw=decision.critical_unserved_kw,
            tier=tier,
            load_kw=decision.observation.load_kw if islanded else load_kw,
        )

    # --- pieces ---------------------------------------------------------------------------

    def _step_start(self, now: datetime) -> datetime:
        step = self.program.step
        return now - (now - now.replace(minute=0, second=0, microsecond=0)) % step

    def _context(
        self,
        live: _Site,
        observation: SiteObservation,
        departures: Departures | None = None,
        site: Site | None = None,
    ) -> ControlContext:
        site = site or live.site  # the tick's site carries the limits of this tick
        steps = max(1, int(live.controller.horizon / self.program.step))
        grid = TimeGrid(self._step_start(observation.now), steps, self.program.step)
        asked = departures or {}
        schedules = self._schedules(site, grid, asked, observation.now)
        events = self.events(site)
        expected_kw = live.floor.kw(self.program, site, observation.now) if live.floor else 0.0
        return control_context(
            self.program,
            site,
            grid,
            observation,
            events,
            self.forecasts,
            schedules,
            asked,
            peak_expected_kw=expected_kw,
        )

    def _month_peak_floor(self) -> MonthPeakFloor | None:
        return MonthPeakFloor() if self.month_peak == "expected" else None

    def _schedules(
        self, site: Site, grid: TimeGrid, departures: Departures, now: datetime
    ) -> dict[str, TripSchedule]:
        tz = self.program.timezone
        return trip_schedules(site, grid, departures, now, tz, self.availability)

    def _departures(
        self, site: Site, states: Mapping[str, StationState], now: datetime
    ) -> Departures:
        return asked_departures(self.store, site, states, now)

    def _next_trip_kwh(
        self, site: Site, now: datetime, departures: Departures | None = None
    ) -> dict[str, float]:
        grid = TimeGrid(self._step_start(now), 1, self.program.step)
        schedules = self._schedules(site, grid, departures or {}, now)
        return {v: float(s.next_trip_kwh[0]) for v, s in schedules.items()}

    def _peak(self, live: _Site, now: datetime) -> float:
        """The billing month's import peak so far: the highest net import of the month's
        completed intervals as recorded (``services.measured``: the chargers' meter values
        and the site meter, or the profile where it has no reading; an interval at least
        half islanded counts 0), read for each interval one ``every`` after it has ended
        (readings a charger sends late still count), and for the whole month so far after a
        restart. Before, the profile alone set it: a real peak the profile did not foresee
        was not known to the plan, which then bought a new one the next time. Sites without
        a demand charge have no use for it (0). A failed reading keeps the last peak and is
        tried again at the next tick: the site plans on."""
        if live.site.tariff.demand_usd_per_kw_month <= 0:
            return 0.0
        done = self._step_start(now - self.every)  # intervals before this one have ended
        live.peak = month_peak(self.store, self.program, live.site, live.peak, now, done)
        return live.peak.kw

    def _held(
        self, states: Mapping[str, StationState], station_ids: Sequence[str], now: datetime
    ) -> dict[str, float]:
        """The setpoint each station holds now (kW) where it was sent during the session
        plugged there now: one sent to an earlier car went with its transaction."""
        held = held_setpoints(self.store, station_ids, now)
        return {
            station_id: power_kw
            for station_id, (power_kw, sent_at) in held.items()
            if (started := states[station_id].started_at) is None
            or sent_at >= started - SESSION_CLOCK_SLACK
        }


def _other_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:  # no loop runs in this thread
        return True


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
