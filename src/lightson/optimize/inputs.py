"""Everything the site LP sees, per interval, as plain arrays (REopt's *Inputs*).

``build_site_inputs`` turns the program model, the measured state and the forecasts
into ``SiteInputs``; the LP is built from ``SiteInputs`` alone, so another tool (or the
independent cross-check in the tests) can rebuild it from the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site, Vehicle
from lightson.domain.errors import ConfigError
from lightson.domain.state import SiteForecast, SiteState
from lightson.domain.time import TimeGrid
from lightson.physics.trips import TripSchedule, energy_floor_kwh_array, trip_schedule

DEFAULT_SHORTFALL_PENALTY_USD_PER_KWH = 100.0
# The early-charging tie-breaker (docs/formulation.md, objective): each hour a kWh of charging
# is put off adds this to its cost, counting at most EARLY_CHARGE_CAP_H hours (at most
# 0.0036 $/kWh, whatever the horizon). Not a price: among hours that cost the same, a plan
# on forecasts charges the earliest; perfect foresight, which has nothing to hedge, sets 0.
EARLY_CHARGE_USD_PER_KWH_H = 1e-4
EARLY_CHARGE_CAP_H = 36.0
# A kWh left at the end is worth what it costs to put back, plus 1 %: ties between charging
# now and later are broken toward fuller batteries (readiness and backup), not arbitrarily.
TERMINAL_VALUE_MARGIN = 1.01
AVERAGE_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, eq=False)
class VehicleInputs:
    """Per-interval inputs of one vehicle (arrays have one value per interval).

    ``floor_kwh[t]`` is the energy the battery should hold at the end of interval ``t``:
    the usable-window minimum, the backup reserve while plugged in, and the departure
    need (trip energy + departure floor) just before a trip leaves. ``max_charge_kw`` and
    ``max_discharge_kw`` are what the LP uses (the lesser of the vehicle's and the charger's
    limit while plugged in, 0 away); the ``vehicle_*`` and ``charger_*`` limits are the two
    sides apart, for a reader of the plan (``None`` when the inputs were built by hand).
    """

    vehicle_id: str
    evse_id: str
    battery_kwh: float
    initial_energy_kwh: float
    max_energy_kwh: float
    floor_kwh: NDArray[np.float64]
    departure_need_kwh: NDArray[np.float64]
    plugged: NDArray[np.bool_]
    max_charge_kw: NDArray[np.float64]
    max_discharge_kw: NDArray[np.float64]
    trip_energy_kwh: NDArray[np.float64]
    charge_efficiency: float
    discharge_efficiency: float
    degradation_usd_per_kwh: float
    terminal_value_usd_per_kwh: float = 0.0
    vehicle_max_charge_kw: float | None = None
    vehicle_max_discharge_kw: float | None = None  # 0 for a vehicle without V2X
    charger_max_charge_kw: float | None = None
    charger_max_discharge_kw: float | None = None


@dataclass(frozen=True, eq=False)
class SiteInputs:
    """Per-interval inputs of one site's LP over ``n_steps`` intervals of ``step_h`` hours.

    ``billing_period[t]`` numbers the billing months in the horizon from 0; the demand
    charge applies to each period's peak import, and period 0 has already reached
    ``peak_so_far_kw``. ``peak_expected_kw`` is the peak period 0 is expected to reach
    anyway before it ends (``forecast.month_peak``; 0: none expected): the demand charge is
    paid once per month, on the month's peak, so import up to ``peak_floor_kw``, the higher
    of the two, costs no demand charge (docs/formulation.md, demand charge).
    ``dr_value_usd_per_kwh[t]`` is the expected payment per kWh of
    net discharge inside a demand-response event (0 outside events).
    ``peak_margin_kw[t]`` (≥ 0; ``None``: 0) is how far the load may come in above
    ``load_kw[t]`` (an upper quantile of the forecast less its median): the peak_demand
    constraint keeps that much headroom under each billing period's peak.
    """

    site_id: str
    start: datetime
    step_h: float
    load_kw: NDArray[np.float64]
    pv_kw: NDArray[np.float64]
    import_price_usd_per_kwh: NDArray[np.float64]
    export_credit_usd_per_kwh: NDArray[np.float64]
    dr_value_usd_per_kwh: NDArray[np.float64]
    service_limit_kw: float
    export_permitted: bool
    demand_usd_per_kw_month: float
    billing_period: NDArray[np.int64]
    peak_so_far_kw: float
    fixed_charge_usd: float
    shortfall_penalty_usd_per_kwh: float
    vehicles: tuple[VehicleInputs, ...]
    early_charge_usd_per_kwh_h: float = EARLY_CHARGE_USD_PER_KWH_H
    peak_expected_kw: float = 0.0
    peak_margin_kw: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        check_site_inputs(self)

    @property
    def peak_floor_kw(self) -> float:
        """Billing period 0's peak already paid for or expected anyway: a new peak costs the
        demand charge only above it."""
        return max(self.peak_so_far_kw, self.peak_expected_kw)

    @property
    def peak_margin(self) -> NDArray[np.float64]:
        """``peak_margin_kw`` with ``None`` read as 0 in every interval (kW)."""
        if self.peak_margin_kw is None:
            return np.zeros(self.n_steps)
        return np.asarray(self.peak_margin_kw, dtype=float)

    @property
    def n_steps(self) -> int:
        return int(self.load_kw.shape[0])

    @property
    def n_billing_periods(self) -> int:
        return int(self.billing_period.max()) + 1

    @property
    def step(self) -> timedelta:
        return timedelta(hours=self.step_h)


def check_site_inputs(inputs: SiteInputs) -> None:
    """Refuse inputs the LP would misread, naming the field: arrays of the wrong length,
    and an export credit above the import price (the LP would then import and export at
    once, which one meter cannot do)."""
    n = inputs.load_kw.shape[0]
    issues = []
    for name in (
        "pv_kw",
        "import_price_usd_per_kwh",
        "export_credit_usd_per_kwh",
        "dr_value_usd_per_kwh",
        "billing_period",
    ):
        if getattr(inputs, name).shape != (n,):
            issues.append((name, f"must have {n} values, one per interval"))
    if inputs.peak_margin_kw is not None and inputs.peak_margin_kw.shape != (n,):
        issues.append(("peak_margin_kw", f"must have {n} values, one per interval"))
    elif inputs.peak_margin_kw is not None and np.any(inputs.peak_margin_kw < 0):
        issues.append(("peak_margin_kw", "must be ≥ 0"))
    for i, v in enumerate(inputs.vehicles):
        for name in (
            "floor_kwh",
            "departure_need_kwh",
            "plugged",
            "max_charge_kw",
            "max_discharge_kw",
            "trip_energy_kwh",
        ):
            if getattr(v, name).shape != (n,):
                issues.append((f"vehicles[{i}].{name}", f"must have {n} values, one per interval"))
        for name in ("charge_efficiency", "discharge_efficiency"):
            if not 0.0 < getattr(v, name) <= 1.0:
                issues.append((f"vehicles[{i}].{name}", "must be in (0, 1]"))
    issues += _non_finite(inputs)
    if not issues and np.any(inputs.export_credit_usd_per_kwh > inputs.import_price_usd_per_kwh):
        issues.append(
            ("export_credit_usd_per_kwh", "must not exceed the import price in any interval")
        )
    if issues:
        raise ConfigError(issues)


MAX_MAGNITUDE = 1e9  # kW, kWh, $: anything larger is a unit mistake, and HiGHS refuses it


def _non_finite(inputs: SiteInputs) -> list[tuple[str, str]]:
    """Fields holding NaN, infinity or absurd magnitudes, by name."""
    if _all_finite(inputs):  # the usual case, checked in one pass; names only when needed
        return []
    fields: list[tuple[str, object]] = [
        (f.name, getattr(inputs, f.name))
        for f in dataclasses.fields(inputs)
        if f.name != "vehicles"
    ]
    for i, v in enumerate(inputs.vehicles):
        fields += [(f"vehicles[{i}].{f.name}", getattr(v, f.name)) for f in dataclasses.fields(v)]
    issues = []
    for name, value in fields:
        if isinstance(value, bool | str | datetime) or value is None:
            continue
        array = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(array)) or np.any(np.abs(array) > MAX_MAGNITUDE):
            issues.append((name, f"must be finite and below {MAX_MAGNITUDE:g} in magnitude"))
    return issues


def _all_finite(inputs: SiteInputs) -> bool:
    """Every number of the inputs finite and within ``MAX_MAGNITUDE``, in one pass."""
    parts: list[NDArray[np.float64]] = []
    holders: tuple[SiteInputs | VehicleInputs, ...] = (inputs, *inputs.vehicles)
    for holder in holders:
        for f in dataclasses.fields(holder):
            value = getattr(holder, f.name)
            if f.name == "vehicles" or isinstance(value, bool | str | datetime) or value is None:
                continue
            try:
                parts.append(np.asarray(value, dtype=float).ravel())
            except (TypeError, ValueError):
                return False  # let the field-by-field pass name it
    values = np.concatenate(parts) if parts else np.zeros(0)
    return bool(np.all(np.isfinite(values)) and np.all(np.abs(values) <= MAX_MAGNITUDE))


def build_site_inputs(
    program: Program,
    site: Site,
    grid: TimeGrid,
    forecast: SiteForecast,
    state: SiteState | None = None,
    shortfall_penalty_usd_per_kwh: float = DEFAULT_SHORTFALL_PENALTY_USD_PER_KWH,
    schedules: Mapping[str, TripSchedule] | None = None,
) -> SiteInputs:
    """The LP inputs of ``site`` over ``grid``, given the measured ``state`` and ``forecast``.

    Vehicle availability comes from each vehicle's recurring trips unless ``schedules``
    gives a forecast (or, for perfect foresight, the truth) for that vehicle id."""
    state = state or SiteState()
    if forecast.load_kw.shape != (grid.n_steps,):
        raise ConfigError.at(
            "forecast.load_kw", f"must have {grid.n_steps} values, one per interval"
        )
    starts_local = grid.starts_local(program.timezone)
    months = [(s.year, s.month) for s in starts_local]
    period_of = {m: i for i, m in enumerate(dict.fromkeys(months))}
    horizon_days = grid.n_steps * grid.step_h / 24.0
    import_price = site.tariff.import_price_usd_per_kwh(starts_local)
    return SiteInputs(
        site_id=site.site_id,
        start=grid.start,
        step_h=grid.step_h,
        load_kw=np.asarray(forecast.load_kw, dtype=float),
        pv_kw=np.asarray(forecast.pv_kw, dtype=float),
        peak_margin_kw=peak_margin_kw(forecast),
        import_price_usd_per_kwh=import_price,
        export_credit_usd_per_kwh=site.tariff.export_credit_array_usd_per_kwh(grid.n_steps),
        dr_value_usd_per_kwh=dr_value_usd_per_kwh(program, site, grid),
        service_limit_kw=site.service_limit_kw,
        export_permitted=site.export_permitted,
        demand_usd_per_kw_month=site.tariff.demand_usd_per_kw_month,
        billing_period=np.array([period_of[m] for m in months], dtype=np.int64),
        peak_so_far_kw=state.peak_so_far_kw,
        peak_expected_kw=state.peak_expected_kw,
        fixed_charge_usd=site.tariff.fixed_usd_per_month * horizon_days / AVERAGE_DAYS_PER_MONTH,
        shortfall_penalty_usd_per_kwh=shortfall_penalty_usd_per_kwh,
        vehicles=tuple(
            _vehicle_inputs(
                v,
                site,
                (schedules or {}).get(v.vehicle_id)
                or trip_schedule(v.trips, grid, program.timezone),
                state,
                import_price,
            )
            for v in site.vehicles
        ),
    )


def peak_margin_kw(forecast: SiteForecast) -> NDArray[np.float64] | None:
    """``max(L^q − L, 0)`` per interval: the upper-quantile load the demand-peak constraint
    plans for, above the median the energy is costed on; ``None`` without an upper
    quantile."""
    if forecast.load_peak_kw is None:
        return None
    upper: NDArray[np.float64] = np.asarray(forecast.load_peak_kw, dtype=float)
    margin: NDArray[np.float64] = np.maximum(upper - np.asarray(forecast.load_kw, dtype=float), 0.0)
    return margin


def dr_value_usd_per_kwh(program: Program, site: Site, grid: TimeGrid) -> NDArray[np.float64]:
    """Expected DR payment per kWh delivered in each interval, from the events of the
    programs the site is enrolled in (an interval is in an event if it starts inside it)."""
    value = np.zeros(grid.n_steps)
    for event in program.events:
        if event.program_id not in site.enrollments:
            continue
        first = max(grid.first_index_from(event.start), 0)
        last = min(grid.first_index_from(event.end), grid.n_steps)
        if first < last:
            value[first:last] += program.dr_program(event.program_id).value_usd_per_kwh
    return value


def _measured_availability(
    schedule: TripSchedule, plugged_now: bool | None
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Availability and trip energy, corrected by the measured plug state: a vehicle back
    early has finished the trip in progress (plugged, no more trip energy, until the next
    departure); one still out is away for the first interval."""
    plugged, energy = ~schedule.away, schedule.trip_energy_kwh.copy()
    if plugged_now is None or plugged_now == bool(plugged[0]):
        return plugged, energy
    if plugged_now:
        end = int(np.argmin(schedule.away)) if not schedule.away.all() else len(plugged)
        plugged[:end], energy[:end] = True, 0.0
    else:
        plugged[0] = False
    return plugged, energy


def _vehicle_inputs(
    vehicle: Vehicle,
    site: Site,
    schedule: TripSchedule,
    state: SiteState,
    import_price: NDArray[np.float64],
) -> VehicleInputs:
    """Vehicle inputs; energy left at the horizon's end is valued at what it would cost to
    put back (mean import price ÷ charge efficiency), so a plan does not drain a battery
    just because the horizon ends."""
    plugged, trip_energy_kwh = _measured_availability(
        schedule, state.plugged_now.get(vehicle.vehicle_id)
    )
    charger = site.charger(vehicle.evse_id)
    charge_kw = min(vehicle.max_charge_kw, charger.max_charge_kw)
    discharge_kw = min(vehicle.max_discharge_kw, charger.max_discharge_kw)
    if not vehicle.v2x_capable:
        discharge_kw = 0.0
    departure_need = np.where(
        schedule.departure_trip_kwh > 0,
        np.minimum(
            schedule.departure_trip_kwh + vehicle.departure_floor_soc * vehicle.battery_kwh,
            vehicle.max_energy_kwh,
        ),
        0.0,
    )
    floor = energy_floor_kwh_array(vehicle, schedule.next_trip_kwh, plugged)
    initial = state.energy_kwh.get(vehicle.vehicle_id, vehicle.initial_soc * vehicle.battery_kwh)
    return VehicleInputs(
        vehicle_id=vehicle.vehicle_id,
        evse_id=vehicle.evse_id,
        battery_kwh=vehicle.battery_kwh,
        initial_energy_kwh=float(np.clip(initial, 0.0, vehicle.battery_kwh)),
        max_energy_kwh=vehicle.max_energy_kwh,
        floor_kwh=np.maximum(floor, departure_need),
        departure_need_kwh=departure_need,
        plugged=plugged,
        max_charge_kw=np.where(plugged, charge_kw, 0.0),
        max_discharge_kw=np.where(plugged, discharge_kw, 0.0),
        trip_energy_kwh=trip_energy_kwh,
        charge_efficiency=vehicle.charge_efficiency,
        discharge_efficiency=vehicle.discharge_efficiency,
        degradation_usd_per_kwh=vehicle.degradation_usd_per_kwh,
        terminal_value_usd_per_kwh=TERMINAL_VALUE_MARGIN
        * float(np.mean(import_price))
        / vehicle.charge_efficiency,
        vehicle_max_charge_kw=vehicle.max_charge_kw,
        vehicle_max_discharge_kw=vehicle.max_discharge_kw if vehicle.v2x_capable else 0.0,
        charger_max_charge_kw=charger.max_charge_kw,
        charger_max_discharge_kw=charger.max_discharge_kw,
    )
