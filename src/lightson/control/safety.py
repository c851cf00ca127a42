"""Hard rules no plan can break, applied to every setpoint after the controller.

In order, per EVSE: a setpoint for an unknown EVSE is dropped and every EVSE without one
gets 0 kW (edges never invent power); nothing flows to an unplugged vehicle; power stays
within the charger's and the vehicle's limits (no discharge from charge-only equipment or a
non-V2X vehicle); a stale plan falls back to charge-only; discharge never takes a battery
below its floor (reserve for backup and the next trip) except in a declared outage, and
charge stops at the top of the usable window; last, a setpoint whose magnitude is below the
vehicle's declared minimum (ISO 15118-20 ``minChargePower``/``minDischargePower``) becomes that
minimum when it is at least half of it and every rule before allows the minimum, else 0. Then
per site: no export while islanded or without export permission; no import while islanded
(what charges takes only PV or other vehicles' power beyond the load, and islanded a setpoint
is never raised to a minimum, only lowered to 0); import within the service limit. These move
setpoints toward 0 in proportion, and one that would land inside (0, its minimum) goes to 0
instead, the others taking its share up to what they asked, so no setpoint leaves the safety
layer between 0 and a declared minimum.

Every change is reported as an ``Intervention`` so an operator can see why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from lightson.domain.assets import Site, Vehicle
from lightson.domain.plan import Setpoint
from lightson.domain.state import OperatingState, SiteObservation
from lightson.physics.trips import energy_floor_kwh

TOLERANCE_KW = 1e-6
INF = float("inf")


class SafetyRule(Enum):
    UNKNOWN_EVSE = "unknown-evse"
    NOT_PLUGGED = "not-plugged"
    EQUIPMENT_LIMIT = "equipment-limit"
    STALE_PLAN = "stale-plan-charge-only"
    VEHICLE_FLOOR = "vehicle-floor"
    BATTERY_FULL = "battery-full"
    DECLARED_MINIMUM = "declared-minimum"
    NO_EXPORT = "no-export"
    SERVICE_LIMIT = "service-limit"
    ISLANDED_IMPORT = "no-import-islanded"


@dataclass(frozen=True)
class Intervention:
    evse_id: str
    rule: SafetyRule
    requested_kw: float
    allowed_kw: float


@dataclass(frozen=True)
class SafetyResult:
    setpoints: tuple[Setpoint, ...]
    interventions: tuple[Intervention, ...]


def operating_state(site: Site, islanded: bool) -> OperatingState:
    if islanded:
        return OperatingState.NON_PARALLEL
    if site.export_permitted:
        return OperatingState.PARALLEL_EXPORTING
    return OperatingState.PARALLEL_NON_EXPORTING


def enforce_safety(
    site: Site,
    observation: SiteObservation,
    requested: Sequence[Setpoint],
    step_h: float,
    next_trip_kwh: Mapping[str, float],
    plan_stale: bool = False,
) -> SafetyResult:
    """Clamp ``requested`` setpoints by the hard rules (module docstring). ``next_trip_kwh``
    is each vehicle's next trip energy (for its floor); ``step_h`` the interval the setpoints
    hold for."""
    log: list[Intervention] = []
    by_evse = {v.evse_id: v for v in site.vehicles}
    wanted: dict[str, float] = {}
    for setpoint in requested:
        if setpoint.evse_id not in by_evse:
            log.append(
                Intervention(setpoint.evse_id, SafetyRule.UNKNOWN_EVSE, setpoint.power_kw, 0.0)
            )
        else:
            wanted[setpoint.evse_id] = setpoint.power_kw
    valid_until = requested[0].valid_until if requested else observation.now
    power: dict[str, float] = {}
    for evse_id, vehicle in by_evse.items():
        power[evse_id] = _vehicle_rules(
            site,
            vehicle,
            observation,
            wanted.get(evse_id, 0.0),
            step_h,
            next_trip_kwh.get(vehicle.vehicle_id, 0.0),
            plan_stale,
            log,
        )
    state = operating_state(site, observation.islanded)
    _site_rules(site, observation, state, power, log)
    setpoints = tuple(Setpoint(evse_id, kw, valid_until) for evse_id, kw in power.items())
    return SafetyResult(setpoints, tuple(log))


def _vehicle_rules(
    site: Site,
    vehicle: Vehicle,
    observation: SiteObservation,
    kw: float,
    step_h: float,
    next_trip_kwh: float,
    plan_stale: bool,
    log: list[Intervention],
) -> float:
    evse_id = vehicle.evse_id
    lowest, highest = -INF, INF  # what every rule so far allows

    def limit(rule: SafetyRule, low: float = -INF, high: float = INF) -> None:
        nonlocal kw, lowest, highest
        lowest, highest = max(lowest, low), min(highest, high)
        allowed = min(max(kw, low), high)
        if abs(allowed - kw) > TOLERANCE_KW:
            log.append(Intervention(evse_id, rule, kw, allowed))
        kw = allowed

    if not observation.plugged.get(vehicle.vehicle_id, False):
        limit(SafetyRule.NOT_PLUGGED, 0.0, 0.0)
        return kw
    charger = site.charger(evse_id)
    max_discharge_kw = (
        min(vehicle.max_discharge_kw, charger.max_discharge_kw) if vehicle.v2x_capable else 0.0
    )
    limit(
        SafetyRule.EQUIPMENT_LIMIT,
        -max_discharge_kw,
        min(vehicle.max_charge_kw, charger.max_charge_kw),
    )
    if plan_stale:
        limit(SafetyRule.STALE_PLAN, low=0.0)
    energy = observation.energy_kwh.get(vehicle.vehicle_id, 0.0)
    floor = (
        vehicle.min_energy_kwh
        if observation.outage_declared
        else energy_floor_kwh(vehicle, next_trip_kwh, True)
    )
    above_floor_kwh = max(energy - floor, 0.0)
    limit(SafetyRule.VEHICLE_FLOOR, low=-above_floor_kwh * vehicle.discharge_efficiency / step_h)
    room_kwh = max(vehicle.max_energy_kwh - energy, 0.0)
    limit(SafetyRule.BATTERY_FULL, high=room_kwh / (vehicle.charge_efficiency * step_h))
    if observation.islanded:
        # Raised to a minimum, a vehicle would give more than the island draws, or charge
        # from the others: islanded a setpoint under its minimum only ever goes to 0.
        lowest = highest = 0.0
    allowed = declared_minimum(kw, vehicle.min_charge_kw, vehicle.min_discharge_kw, lowest, highest)
    if abs(allowed - kw) > TOLERANCE_KW:
        log.append(Intervention(evse_id, SafetyRule.DECLARED_MINIMUM, kw, allowed))
    return allowed


def declared_minimum(
    kw: float,
    min_charge_kw: float,
    min_discharge_kw: float,
    low_kw: float = -INF,
    high_kw: float = INF,
) -> float:
    """``kw`` moved out of (0, minimum) for its direction: to the minimum (same sign) when
    ``kw`` is at least half of it (nearer to it than to 0, so the interval's energy changes
    least) and it lies within [``low_kw``, ``high_kw``] (what the other rules allow: the
    equipment, the battery's floor and top), else to 0. 0 and magnitudes at or above the
    minimum are returned as they are. Minimums are magnitudes (kW ≥ 0)."""
    minimum_kw = min_charge_kw if kw > 0 else min_discharge_kw
    if abs(kw) >= minimum_kw - TOLERANCE_KW:
        return kw
    if abs(kw) <= TOLERANCE_KW:
        return 0.0
    raised_kw = math.copysign(minimum_kw, kw)
    if abs(kw) >= minimum_kw / 2 and low_kw - TOLERANCE_KW <= raised_kw <= high_kw + TOLERANCE_KW:
        return raised_kw
    return 0.0


def _site_rules(
    site: Site,
    observation: SiteObservation,
    state: OperatingState,
    power: dict[str, float],
    log: list[Intervention],
) -> None:
    """Scale discharges down to stop export, and charges down to respect the service limit."""
    load_kw, pv_kw = observation.export_check_kw or (observation.load_kw, observation.pv_kw)
    net_kw = load_kw - pv_kw + sum(power.values())
    if not state.may_export and net_kw < -TOLERANCE_KW:
        minimums = {v.evse_id: v.min_discharge_kw for v in site.vehicles}
        _scale(power, lambda kw: kw < 0, -net_kw, SafetyRule.NO_EXPORT, minimums, log)
    net_kw = observation.load_kw - observation.pv_kw + sum(power.values())
    if state is OperatingState.NON_PARALLEL and net_kw > TOLERANCE_KW:
        # Islanded there is no grid to import from: what charges comes from PV or the other
        # vehicles, never more than they give beyond the load.
        minimums = {v.evse_id: v.min_charge_kw for v in site.vehicles}
        _scale(power, lambda kw: kw > 0, net_kw, SafetyRule.ISLANDED_IMPORT, minimums, log)
        net_kw = observation.load_kw - observation.pv_kw + sum(power.values())
    if net_kw > site.service_limit_kw + TOLERANCE_KW:
        minimums = {v.evse_id: v.min_charge_kw for v in site.vehicles}
        excess_kw = net_kw - site.service_limit_kw
        _scale(power, lambda kw: kw > 0, excess_kw, SafetyRule.SERVICE_LIMIT, minimums, log)


def _scale(
    power: dict[str, float],
    selected: Callable[[float], bool],
    excess_kw: float,
    rule: SafetyRule,
    minimum_kw: Mapping[str, float],
    log: list[Intervention],
) -> None:
    """Move the selected setpoints toward 0 in proportion, by ``excess_kw`` in all (at most
    their whole magnitude). A setpoint that would land below its ``minimum_kw`` (a declared
    minimum power) goes to 0 instead, the smallest first, and the others are scaled again
    (never above what they asked): the total moves by at least ``excess_kw``."""
    chosen = {e: kw for e, kw in power.items() if selected(kw)}
    total = sum(abs(kw) for kw in chosen.values())
    if total <= TOLERANCE_KW:
        return
    target_kw = max(total - excess_kw, 0.0)
    kept = dict(chosen)
    keep = 0.0
    while kept:
        keep = min(1.0, target_kw / sum(abs(kw) for kw in kept.values()))
        short = [
            e for e, kw in kept.items() if abs(kw) * keep < minimum_kw.get(e, 0.0) - TOLERANCE_KW
        ]
        if not short:
            break
        del kept[min(short, key=lambda e: (abs(kept[e]), e))]
    for evse_id, kw in chosen.items():
        power[evse_id] = kw * keep if evse_id in kept else 0.0
        if abs(power[evse_id] - kw) > TOLERANCE_KW:
            why = rule if evse_id in kept else SafetyRule.DECLARED_MINIMUM
            log.append(Intervention(evse_id, why, kw, power[evse_id]))
