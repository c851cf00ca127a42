"""Islanded operation: the grid is down and the site is non-parallel behind its transfer
switch; plugged V2X vehicles (and PV) carry the building.

Each step: what every plugged V2X vehicle can give is limited by its charger and vehicle
discharge limits and by the energy above its outage floor (the usable minimum plus the
energy of its next trip: a bus keeps its next route). The site then serves the highest
load tier the supply covers (full, else essential, else critical), shedding the rest; if
even the critical tier is too much, it serves what it can. Energy counts too: a tier above
critical is served only while the vehicles would still hold ``backup_target_h`` hours of
the critical load afterwards (the outage's length is unknown; the critical load comes
first). Vehicles share the discharge in
proportion to what each can give; PV beyond the served load charges plugged vehicles, and
what they can't take is curtailed (nothing is ever exported while islanded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lightson.domain.assets import LoadTier, Site, Vehicle
from lightson.domain.plan import Setpoint
from lightson.domain.state import SiteObservation
from lightson.physics.trips import outage_floor_kwh

DEFAULT_BACKUP_TARGET_H = 8.0  # [assumed] hours of critical load protected before comfort


@dataclass(frozen=True)
class IslandedDecision:
    setpoints: tuple[Setpoint, ...]
    tier: LoadTier | None  # highest tier served in full; None: not even the critical load
    served_kw: float
    critical_unserved_kw: float


def tier_loads_kw(site: Site, load_kw: float) -> dict[LoadTier, float]:
    """The load of each tier (nested: critical ⊂ essential ⊂ full)."""
    return {tier: site.building.tiers.share(tier) * load_kw for tier in LoadTier}


def islanded_setpoints(
    site: Site,
    observation: SiteObservation,
    step_h: float,
    next_trip_kwh: Mapping[str, float],
    valid_until: datetime,
    backup_target_h: float = DEFAULT_BACKUP_TARGET_H,
    held_kw: float = 0.0,
) -> IslandedDecision:
    """``held_kw``: what chargers we cannot steer now give (setpoints they still hold, of
    vehicles not in the observation's plugged set): part of the supply, never PV surplus
    for the others to charge from."""
    give = {
        v.evse_id: _can_give_kw(site, v, observation, step_h, next_trip_kwh.get(v.vehicle_id, 0.0))
        for v in site.vehicles
    }
    held_kw = max(held_kw, 0.0)
    supply_kw = observation.pv_kw + held_kw + sum(give.values())
    tiers = tier_loads_kw(site, observation.load_kw)
    stored_kwh = sum(
        deliverable_kwh(v, observation, next_trip_kwh.get(v.vehicle_id, 0.0)) for v in site.vehicles
    )
    keep_kwh = tiers[LoadTier.CRITICAL] * backup_target_h  # PV now won't last the night

    def affordable(tier: LoadTier) -> bool:
        from_vehicles_kwh = max(tiers[tier] - observation.pv_kw, 0.0) * step_h
        energy_ok = tier is LoadTier.CRITICAL or stored_kwh - from_vehicles_kwh >= keep_kwh
        return tiers[tier] <= supply_kw + 1e-9 and energy_ok

    tiers_high_first = (LoadTier.FULL, LoadTier.ESSENTIAL, LoadTier.CRITICAL)
    tier = next((t for t in tiers_high_first if affordable(t)), None)
    served_kw = tiers[tier] if tier else supply_kw
    minimum = {v.evse_id: v.min_discharge_kw for v in site.vehicles}
    from_vehicles_kw = max(served_kw - observation.pv_kw - held_kw, 0.0)
    given = share_discharge(from_vehicles_kw, give, minimum)
    power = {evse_id: -kw for evse_id, kw in given.items()}
    short_kw = from_vehicles_kw - sum(given.values())
    if short_kw > 1e-9:  # minimums left part of it unservable: shed what is not served
        served_kw -= short_kw
        tier = served_tier(tiers, served_kw)
    surplus_kw = max(observation.pv_kw - served_kw, 0.0)
    if surplus_kw > 0:
        _absorb(site, observation, step_h, surplus_kw, power)
    return IslandedDecision(
        setpoints=tuple(Setpoint(e, kw, valid_until) for e, kw in power.items()),
        tier=tier,
        served_kw=served_kw,
        critical_unserved_kw=max(tiers[LoadTier.CRITICAL] - served_kw, 0.0),
    )


def served_tier(tiers: Mapping[LoadTier, float], served_kw: float) -> LoadTier | None:
    """The highest tier ``served_kw`` covers in full (``None``: not even the critical one)."""
    for tier in (LoadTier.FULL, LoadTier.ESSENTIAL, LoadTier.CRITICAL):
        if tiers[tier] <= served_kw + 1e-6:
            return tier
    return None


def share_discharge(
    need_kw: float, give_kw: Mapping[str, float], minimum_kw: Mapping[str, float]
) -> dict[str, float]:
    """Discharge magnitudes (kW ≥ 0) by EVSE that add up to ``need_kw`` where the vehicles
    allow it: each vehicle gives 0 or between its declared minimum and what it can give.
    Vehicles are taken most able first, leaving out any whose minimum would push the sum of
    minimums past the need; the need is then shared as each minimum plus a part of the room
    above it, in proportion to that room. Where they cannot cover the need, all they can is
    given (the rest of the load is shed). Without minimums this is the need shared in
    proportion to what each can give."""
    usable = sorted(
        (
            (evse_id, minimum_kw.get(evse_id, 0.0), kw)
            for evse_id, kw in give_kw.items()
            if kw > 1e-9 and kw >= minimum_kw.get(evse_id, 0.0) - 1e-9
        ),
        key=lambda item: (-item[2], item[0]),
    )
    chosen: list[tuple[str, float, float]] = []
    for item in usable:
        if sum(c[1] for c in chosen) + item[1] > need_kw + 1e-9:
            continue  # its minimum would give more than the load takes
        chosen.append(item)
    shares = {evse_id: 0.0 for evse_id in give_kw}
    low_kw = sum(c[1] for c in chosen)
    high_kw = sum(c[2] for c in chosen)
    total_kw = min(need_kw, high_kw)
    if not chosen or total_kw < low_kw - 1e-9:
        return shares
    room_kw = high_kw - low_kw
    for evse_id, least_kw, most_kw in chosen:
        part = (most_kw - least_kw) / room_kw if room_kw > 1e-12 else 0.0
        shares[evse_id] = least_kw + (total_kw - low_kw) * part
    return shares


def deliverable_kwh(vehicle: Vehicle, observation: SiteObservation, next_trip_kwh: float) -> float:
    """Energy a plugged V2X vehicle can still deliver at the EVSE above its outage floor."""
    if not (vehicle.v2x_capable and observation.plugged.get(vehicle.vehicle_id, False)):
        return 0.0
    above_kwh = observation.energy_kwh.get(vehicle.vehicle_id, 0.0) - outage_floor_kwh(
        vehicle, next_trip_kwh
    )
    return max(above_kwh, 0.0) * vehicle.discharge_efficiency


def _can_give_kw(
    site: Site, vehicle: Vehicle, observation: SiteObservation, step_h: float, next_trip_kwh: float
) -> float:
    if not (vehicle.v2x_capable and observation.plugged.get(vehicle.vehicle_id, False)):
        return 0.0
    limit_kw = min(vehicle.max_discharge_kw, site.charger(vehicle.evse_id).max_discharge_kw)
    above_kwh = observation.energy_kwh.get(vehicle.vehicle_id, 0.0) - outage_floor_kwh(
        vehicle, next_trip_kwh
    )
    return max(min(limit_kw, above_kwh * vehicle.discharge_efficiency / step_h), 0.0)


def _absorb(
    site: Site,
    observation: SiteObservation,
    step_h: float,
    surplus_kw: float,
    power: dict[str, float],
) -> None:
    """Charge plugged vehicles that are not discharging with PV surplus, up to their limits
    (a vehicle whose declared minimum is above what is left takes none)."""
    for vehicle in site.vehicles:
        if (
            surplus_kw <= 0
            or power[vehicle.evse_id] < 0
            or not observation.plugged.get(vehicle.vehicle_id, False)
        ):
            continue
        room_kwh = max(
            vehicle.max_energy_kwh - observation.energy_kwh.get(vehicle.vehicle_id, 0.0), 0.0
        )
        limit_kw = min(
            vehicle.max_charge_kw,
            site.charger(vehicle.evse_id).max_charge_kw,
            room_kwh / (vehicle.charge_efficiency * step_h),
        )
        kw = min(limit_kw, surplus_kw)
        if kw < vehicle.min_charge_kw - 1e-9:
            continue  # below its declared minimum: it cannot take this little
        power[vehicle.evse_id] = kw
        surplus_kw -= kw
