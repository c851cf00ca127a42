"""Controllers: how a site decides its setpoints each tick, from a registry.

- ``unmanaged``: every plugged vehicle charges at full power until full.
- ``smart-charge``: charge-only LP (no discharge, no DR): cheapest hours that meet needs.
- ``v2x-mpc``: the full LP on a receding horizon with forecasts (ours).
- ``perfect-foresight``: the same LP given the truth (load, trips, every event): the upper
  bound on value. Only a simulator can run it.

A controller is made per site and keeps its last plan: it re-plans every
``replan_every`` and at once when a vehicle plugs in or unplugs against the plan, or when
the set of known events or of departures asked for changes, or a vehicle's or charger's
power limits change (live: what a vehicle declared, what its charger refused; also when a
battery drifts from the plan by more than ``drift_share``). Between plans, ``guard_peak``
holds the import at the month's peak when the measured load beats its forecast. Setpoints
then go through ``control.safety``.

The month's peak may be valued over the month, not the horizon (``--month-peak expected``,
#16): the context then carries the peak the month is expected to reach anyway
(``forecast.month_peak.MonthPeakFloor``), below which a new import peak costs nothing; a
plan-based controller plans on it and its peak guard holds the import at that level at least.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from lightson.domain.assets import Program, Site
from lightson.domain.plan import Plan, Setpoint, SolveStatus
from lightson.domain.registry import Registry
from lightson.domain.state import SiteForecast, SiteObservation, SiteState
from lightson.optimize import WarmStart, plan_at
from lightson.physics.trips import TripSchedule

DEFAULT_HORIZON = timedelta(hours=36)  # 24 h raised school demand charges by up to 30 %
DEFAULT_REPLAN_EVERY = timedelta(hours=1)


@dataclass(frozen=True, eq=False)
class ControlContext:
    """What a controller may know at ``observation.now``: the program with the events
    announced so far, its site, the measurement, and forecasts from the interval holding
    ``now`` over the controller's horizon (``schedules``: plug-in forecast per vehicle id,
    ``None`` for the recurring trips of the program file). ``departures``: departures someone
    asked for (vehicle id, when, energy above the departure floor), already in ``schedules``;
    a plan-based controller re-plans when they change. ``peak_expected_kw``: the import peak
    the billing month is expected to reach anyway (0: only the peak so far counts)."""

    program: Program
    site: Site
    observation: SiteObservation
    forecast: SiteForecast
    schedules: Mapping[str, TripSchedule] | None = None
    departures: frozenset[tuple[str, datetime, float | None]] = frozenset()
    peak_expected_kw: float = 0.0


class Controller(Protocol):
    name: str
    foresight: bool  # True: the simulator passes the truth as forecast and every event
    horizon: timedelta

    def setpoints(self, context: ControlContext) -> list[Setpoint]: ...


class Unmanaged:
    """Full power on plug-in until the battery is full."""

    name = "unmanaged"
    foresight = False
    horizon = timedelta(minutes=15)

    def setpoints(self, context: ControlContext) -> list[Setpoint]:
        obs, site = context.observation, context.site
        until = obs.now + context.program.step
        result = []
        for vehicle in site.vehicles:
            charger = site.charger(vehicle.evse_id)
            full = obs.energy_kwh.get(vehicle.vehicle_id, 0.0) >= vehicle.max_energy_kwh - 1e-6
            on = obs.plugged.get(vehicle.vehicle_id, False) and not full
            power_kw = min(vehicle.max_charge_kw, charger.max_charge_kw) if on else 0.0
            result.append(Setpoint(vehicle.evse_id, power_kw, until))
        return result


@dataclass
class LinearProgramController:
    """Receding-horizon LP controller (``v2x-mpc``, ``smart-charge``, ``perfect-foresight``)."""

    name: str
    foresight: bool = False
    charge_only: bool = False
    horizon: timedelta = DEFAULT_HORIZON
    replan_every: timedelta = DEFAULT_REPLAN_EVERY
    # Re-plan when a plugged vehicle's battery is this share of its capacity away from the
    # plan (a charger not following its setpoints, a reading that corrects the last one);
    # None: never for that. The live loop sets it; the simulator follows its plans exactly.
    drift_share: float | None = None
    _plan: Plan | None = field(default=None, repr=False)
    _plugged: dict[str, bool] = field(default_factory=dict, repr=False)
    _events: frozenset[str] = field(default_factory=frozenset, repr=False)
    _departures: frozenset[tuple[str, datetime, float | None]] = field(
        default_factory=frozenset, repr=False
    )
    _limits: tuple[tuple[object, ...], ...] = field(default_factory=tuple, repr=False)
    _warm: WarmStart = field(default_factory=WarmStart, repr=False)
    plans_made: int = 0

    @property
    def last_plan(self) -> Plan | None:
        """The plan the controller follows now (``None`` before its first)."""
        return self._plan

    def setpoints(self, context: ControlContext) -> list[Setpoint]:
        obs = context.observation
        events = frozenset(e.event_id for e in context.program.events)
        if self._needs_plan(context, events):
            self._plan = self._make_plan(context)
            self._plugged = dict(obs.plugged)
            self._events = events
            self._departures = context.departures
            self._limits = power_limits(context.site)
            self.plans_made += 1
        assert self._plan is not None
        index = int((obs.now - self._plan.start) // self._plan.step)
        planned = self._plan.setpoints(index)
        if context.site.tariff.demand_usd_per_kw_month <= 0:
            return planned
        cap_kw = max(
            obs.peak_so_far_kw,
            context.peak_expected_kw,
            float(self._plan.site_net_power_kw[index]),
        )
        return guard_peak(context, planned, cap_kw, allow_discharge=not self.charge_only)

    def _needs_plan(self, context: ControlContext, events: frozenset[str]) -> bool:
        plan, now = self._plan, context.observation.now
        return (
            plan is None
            or now - plan.start >= self.replan_every
            or now >= plan.start + plan.n_steps * plan.step
            or dict(context.observation.plugged) != self._plugged
            or events != self._events
            or context.departures != self._departures
            or power_limits(context.site) != self._limits
            or self._drifted(context)
        )

    def _drifted(self, context: ControlContext) -> bool:
        """Whether the plan's forecast went wrong by much: the building's load more than
        ``drift_share`` of the site's service limit from the load the plan assumed for this
        interval, or a plugged vehicle's energy more than ``drift_share`` of its battery from
        what the plan expected at the start of it."""
        plan, obs = self._plan, context.observation
        if self.drift_share is None or plan is None:
            return False
        index = int((obs.now - plan.start) // plan.step)
        if 0 <= index < plan.n_steps and plan.status is SolveStatus.OPTIMAL:
            vehicles_kw = sum(float(v.power_kw[index]) for v in plan.vehicles)
            planned_load_kw = (
                float(plan.site_net_power_kw[index]) - vehicles_kw + float(plan.pv_kw[index])
            )
            if (
                abs(obs.load_kw - planned_load_kw)
                > self.drift_share * context.site.service_limit_kw
            ):
                return True
        if not 1 <= index <= plan.n_steps:
            return False
        batteries = {v.vehicle_id: v.battery_kwh for v in context.site.vehicles}
        for vehicle in plan.vehicles:
            measured = obs.energy_kwh.get(vehicle.vehicle_id)
            if measured is None or not obs.plugged.get(vehicle.vehicle_id, False):
                continue
            expected = float(vehicle.energy_kwh[index - 1])
            if abs(measured - expected) > self.drift_share * batteries[vehicle.vehicle_id]:
                return True
        return False

    def _make_plan(self, context: ControlContext) -> Plan:
        obs = context.observation
        state = SiteState(
            energy_kwh=obs.energy_kwh,
            plugged_now=obs.plugged,
            peak_so_far_kw=obs.peak_so_far_kw,
            peak_expected_kw=context.peak_expected_kw,
        )
        return plan_at(
            context.program,
            context.site,
            obs.now,
            state,
            context.forecast,
            schedules=context.schedules,
            charge_only=self.charge_only,
            warm=self._warm,
            hedge=not self.foresight,  # the truth needs no hedge
        )


def power_limits(site: Site) -> tuple[tuple[object, ...], ...]:
    """Every vehicle's and charger's power limits at the site (kW): a plan made with other
    limits is made again."""
    return tuple(
        (v.vehicle_id, v.max_charge_kw, v.max_discharge_kw, v.min_charge_kw, v.min_discharge_kw)
        for v in site.vehicles
    ) + tuple((c.evse_id, c.max_charge_kw, c.max_discharge_kw) for c in site.chargers)


def guard_peak(
    context: ControlContext, planned: list[Setpoint], cap_kw: float, allow_discharge: bool
) -> list[Setpoint]:
    """Hold the import at ``cap_kw`` (the billing month's peak so far, its expected peak or
    the planned import, whichever is highest) when the measured load comes in above its
    forecast: first charge less, then (V2X) discharge more. The plan's forecast can't see a
    load spike; a new monthly peak costs the demand rate on every kW. The safety layer still
    applies after."""
    obs, site = context.observation, context.site
    power = {s.evse_id: s.power_kw for s in planned}
    excess_kw = obs.load_kw - obs.pv_kw + sum(power.values()) - cap_kw
    for evse_id, kw in sorted(power.items(), key=lambda item: -item[1]):
        if excess_kw <= 0:
            break
        if kw > 0:
            cut_kw = min(kw, excess_kw)
            power[evse_id], excess_kw = kw - cut_kw, excess_kw - cut_kw
    if allow_discharge:
        for vehicle in site.vehicles:
            if excess_kw <= 0:
                break
            if not (vehicle.v2x_capable and obs.plugged.get(vehicle.vehicle_id, False)):
                continue
            limit_kw = min(vehicle.max_discharge_kw, site.charger(vehicle.evse_id).max_discharge_kw)
            extra_kw = min(limit_kw + min(power[vehicle.evse_id], 0.0), excess_kw)
            if extra_kw > 0:
                power[vehicle.evse_id] -= extra_kw
                excess_kw -= extra_kw
    return [Setpoint(s.evse_id, power[s.evse_id], s.valid_until) for s in planned]


CONTROLLERS: Registry[Callable[[], Controller]] = Registry("controller")
CONTROLLERS.register("unmanaged", Unmanaged)
CONTROLLERS.register(
    "smart-charge", lambda: LinearProgramController("smart-charge", charge_only=True)
)
CONTROLLERS.register("v2x-mpc", lambda: LinearProgramController("v2x-mpc"))
CONTROLLERS.register(
    "perfect-foresight", lambda: LinearProgramController("perfect-foresight", foresight=True)
)
