"""The optimizer's two modes: a one-shot plan over any horizon, and one step of a
receding horizon (plan at ``now`` with the forecasts at hand)."""

from __future__ import annotations

from datetime import datetime

from lightson.domain.assets import Program, Site
from lightson.domain.plan import Plan
from lightson.domain.state import SiteForecast, SiteState
from lightson.domain.time import TimeGrid
from lightson.optimize.extract import empty_plan, extract_plan
from lightson.optimize.inputs import SiteInputs, build_site_inputs
from lightson.optimize.model import build_model
from lightson.optimize.solve import solve


def plan_site(inputs: SiteInputs, time_limit_s: float = 60.0) -> Plan:
    """Build, solve and extract the plan for ``inputs`` (one-shot, any horizon).

    Infeasible needs (a vehicle that arrived too empty) do not fail: the plan does the
    best it can and reports each vehicle's shortfall."""
    lp = build_model(inputs)
    solution = solve(lp, time_limit_s)
    if not solution.status.has_plan:
        return empty_plan(inputs, solution.status)
    return extract_plan(inputs, lp, solution)


def plan_at(
    program: Program,
    site: Site,
    now: datetime,
    state: SiteState,
    forecast: SiteForecast,
    time_limit_s: float = 10.0,
) -> Plan:
    """One receding-horizon step: plan ``site`` from the interval holding ``now`` over the
    forecast's length, starting from the measured ``state``. The simulator and the live
    server call this every few minutes and apply ``plan.setpoints(0)``."""
    step_start = now - (now - now.replace(minute=0, second=0, microsecond=0)) % program.step
    grid = TimeGrid(step_start, forecast.load_kw.shape[0], program.step)
    return plan_site(build_site_inputs(program, site, grid, forecast, state), time_limit_s)
