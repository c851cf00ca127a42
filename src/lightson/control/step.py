"""One control step of one site: the code the simulator and the live server share.

Given what was measured (``SiteObservation``) and whether the site is islanded, a step asks
either the islanded dispatch (outage: serve the building's load tiers from the vehicles) or
the site's controller (grid: the plan) for setpoints, and clamps them with the safety layer.
Nothing here knows where the observation came from (a simulated world or meter values from
real chargers) or where the setpoints go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from lightson.control.controllers import ControlContext, Controller
from lightson.control.islanded import islanded_setpoints, served_tier, tier_loads_kw
from lightson.control.safety import Intervention, enforce_safety
from lightson.domain.assets import LoadTier, Site
from lightson.domain.plan import Setpoint
from lightson.domain.state import SiteObservation


@dataclass(frozen=True)
class StepDecision:
    """The safe setpoints of one step and what the site did. ``observation`` is the one the
    step used: islanded, its ``load_kw`` is the load actually served."""

    setpoints: tuple[Setpoint, ...]
    interventions: tuple[Intervention, ...]
    observation: SiteObservation
    islanded: bool
    critical_unserved_kw: float = 0.0
    tier: LoadTier | None = None  # islanded: the highest load tier served in full


def decide(
    site: Site,
    observation: SiteObservation,
    next_trip_kwh: Mapping[str, float],
    step_h: float,
    valid_until: datetime,
    *,
    controller: Controller,
    context: Callable[[SiteObservation], ControlContext],
    islanded: bool = False,
    released_vehicles: frozenset[str] = frozenset(),
    plan_stale: bool = False,
    held_supply_kw: float = 0.0,
) -> StepDecision:
    """Setpoints for the step starting at ``observation.now``.

    ``next_trip_kwh`` is each vehicle's next trip energy (its floor). Islanded, the vehicles
    in ``released_vehicles`` (an operator released their route reserve for this outage) may
    go below it. ``context`` builds the controller's view (forecasts, known events) and is
    only called on the grid. Every setpoint holds until ``valid_until``. ``plan_stale``: the
    plan is too old to trust, so the safety layer allows charging only. ``held_supply_kw``
    (islanded): what chargers that are not in the observation still give under setpoints
    they hold; it carries part of the load.

    Islanded, the tier served and the critical load unserved are what the setpoints give
    after the safety layer, which may have cut them (a floor, a declared minimum).
    """
    if islanded:
        floors = {v: 0.0 if v in released_vehicles else kwh for v, kwh in next_trip_kwh.items()}
        dispatch = islanded_setpoints(
            site, observation, step_h, floors, valid_until, held_kw=held_supply_kw
        )
        used = replace(
            observation,
            load_kw=max(dispatch.served_kw - max(held_supply_kw, 0.0), 0.0),
            islanded=True,
            outage_declared=True,
        )
        safe = enforce_safety(site, used, dispatch.setpoints, step_h, floors)
        given_kw = (
            observation.pv_kw + max(held_supply_kw, 0.0) - sum(s.power_kw for s in safe.setpoints)
        )
        served_kw = max(min(dispatch.served_kw, given_kw), 0.0)
        tiers = tier_loads_kw(site, observation.load_kw)
        return StepDecision(
            safe.setpoints,
            safe.interventions,
            replace(used, load_kw=served_kw),
            True,
            max(tiers[LoadTier.CRITICAL] - served_kw, 0.0),
            served_tier(tiers, served_kw),
        )
    requested = [
        replace(s, valid_until=valid_until) for s in controller.setpoints(context(observation))
    ]
    safe = enforce_safety(site, observation, requested, step_h, next_trip_kwh, plan_stale)
    return StepDecision(safe.setpoints, safe.interventions, observation, False)
