"""The optimizer's two modes: a one-shot plan over any horizon, and one step of a
receding horizon (plan at ``now`` with the forecasts at hand)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

import numpy as np

from lightson.domain.assets import Program, Site
from lightson.domain.plan import Plan
from lightson.domain.state import SiteForecast, SiteState
from lightson.domain.time import TimeGrid
from lightson.optimize.extract import empty_plan, extract_plan
from lightson.optimize.inputs import SiteInputs, build_site_inputs
from lightson.optimize.model import build_model
from lightson.optimize.solve import WarmStart, solve
from lightson.physics.trips import TripSchedule


def plan_site(
    inputs: SiteInputs, time_limit_s: float = 60.0, warm: WarmStart | None = None
) -> Plan:
    """Build, solve and extract the plan for ``inputs`` (one-shot, any horizon).

    Infeasible needs (a vehicle that arrived too empty) do not fail: the plan does the
    best it can and reports each vehicle's shortfall."""
    lp = build_model(inputs)
    solution = solve(lp, time_limit_s, warm)
    if not solution.status.has_plan:
        return empty_plan(inputs, solution.status)
    return extract_plan(inputs, lp, solution)


def plan_at(
    program: Program,
    site: Site,
    now: datetime,
    state: SiteState,
    forecast: SiteForecast,
    schedules: Mapping[str, TripSchedule] | None = None,
    charge_only: bool = False,
    time_limit_s: float = 10.0,
    warm: WarmStart | None = None,
    hedge: bool = True,
) -> Plan:
    """One receding-horizon step: plan ``site`` from the interval holding ``now`` over the
    forecast's length, starting from the measured ``state``, with the plug-in forecast
    ``schedules`` (default: the recurring trips). ``program.events`` are the events the plan
    may count on: pass only those announced by ``now`` (``DREvent.known_at``). With
    ``charge_only`` no vehicle discharges and DR is worth nothing (``smart-charge``). The
    control loop calls this every few minutes and applies the current interval's setpoints.
    ``hedge``: break ties toward charging early (a plan on forecasts); off for a plan on
    the truth (perfect foresight)."""
    step_start = now - (now - now.replace(minute=0, second=0, microsecond=0)) % program.step
    grid = TimeGrid(step_start, forecast.load_kw.shape[0], program.step)
    inputs = build_site_inputs(program, site, grid, forecast, state, schedules=schedules)
    if not hedge:
        inputs = replace(inputs, early_charge_usd_per_kwh_h=0.0)
    return plan_site(without_discharge(inputs) if charge_only else inputs, time_limit_s, warm)


def without_discharge(inputs: SiteInputs) -> SiteInputs:
    """The same inputs with every discharge limit and DR value at 0 (charge-only)."""
    vehicles = tuple(
        replace(v, max_discharge_kw=np.zeros_like(v.max_discharge_kw)) for v in inputs.vehicles
    )
    return replace(inputs, vehicles=vehicles, dr_value_usd_per_kwh=np.zeros(inputs.n_steps))
