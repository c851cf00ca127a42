"""From solver values back to a typed ``Plan`` with its objective terms."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lightson.domain.plan import ObjectiveTerms, Plan, SolveStatus, VehiclePlan
from lightson.optimize.inputs import SiteInputs, VehicleInputs
from lightson.optimize.model import LinearProgram, early_charge_cost
from lightson.optimize.solve import Solution


def extract_plan(inputs: SiteInputs, lp: LinearProgram, solution: Solution) -> Plan:
    n, n_vehicles = inputs.n_steps, len(inputs.vehicles)

    def block(name: str) -> NDArray[np.float64]:
        return solution.x[lp.columns[name]]

    def vehicle_block(name: str) -> NDArray[np.float64]:
        return block(name).reshape(n_vehicles, n)

    # Both are ≥ 0 by their bounds; clip the solver's round-off (-1e-13) so a charge-only
    # plan never reads as a discharge.
    charge = np.maximum(vehicle_block("charge_kw"), 0.0)
    discharge = np.maximum(vehicle_block("discharge_kw"), 0.0)
    energy, floor_short = vehicle_block("energy_kwh"), vehicle_block("floor_shortfall_kwh")
    unserved = vehicle_block("trip_unserved_kwh")
    vehicles = tuple(
        VehiclePlan(
            vehicle_id=v.vehicle_id,
            evse_id=v.evse_id,
            power_kw=charge[i] - discharge[i],
            energy_kwh=energy[i],
            soc=energy[i] / v.battery_kwh,
            floor_shortfall_kwh=_max(floor_short[i]),
            departure_shortfall_kwh=departure_shortfall_kwh(v, energy[i]),
            unserved_trip_kwh=float(unserved[i].sum()),
        )
        for i, v in enumerate(inputs.vehicles)
    )
    grid_import, grid_export = block("grid_import_kw"), block("grid_export_kw")
    return Plan(
        site_id=inputs.site_id,
        start=inputs.start,
        step=inputs.step,
        status=solution.status,
        vehicles=vehicles,
        site_net_power_kw=grid_import - grid_export,
        pv_kw=inputs.pv_kw,
        objective=_objective_terms(inputs, lp, solution, charge, discharge),
        solve_time_s=solution.solve_time_s,
    )


def _objective_terms(
    inputs: SiteInputs,
    lp: LinearProgram,
    solution: Solution,
    charge: NDArray[np.float64],
    discharge: NDArray[np.float64],
) -> ObjectiveTerms:
    dt, n = inputs.step_h, inputs.n_steps
    x = solution.x
    net_discharge_kw = discharge.sum(axis=0) - charge.sum(axis=0)
    degradation = sum(
        v.degradation_usd_per_kwh / v.discharge_efficiency * float(discharge[i].sum()) * dt
        for i, v in enumerate(inputs.vehicles)
    )
    demand = 0.0
    if "peak_kw" in lp.columns:
        peaks = x[lp.columns["peak_kw"]]
        demand = inputs.demand_usd_per_kw_month * (float(peaks.sum()) - inputs.peak_floor_kw)
    shortfall = sum(
        float(lp.cost[lp.columns[name]] @ x[lp.columns[name]])
        for name in ("floor_shortfall_kwh", "trip_unserved_kwh")
    )
    return ObjectiveTerms(
        energy_usd=float(inputs.import_price_usd_per_kwh @ x[lp.columns["grid_import_kw"]]) * dt,
        export_credit_usd=float(inputs.export_credit_usd_per_kwh @ x[lp.columns["grid_export_kw"]])
        * dt,
        demand_usd=demand,
        fixed_usd=inputs.fixed_charge_usd,
        degradation_usd=degradation,
        dr_revenue_usd=float(inputs.dr_value_usd_per_kwh @ net_discharge_kw) * dt,
        shortfall_penalty_usd=shortfall,
        terminal_value_usd=sum(
            v.terminal_value_usd_per_kwh * float(x[lp.columns["energy_kwh"]][(i + 1) * n - 1])
            for i, v in enumerate(inputs.vehicles)
        ),
        early_charge_usd=float(early_charge_cost(inputs) @ x[lp.columns["charge_kw"]]),
    )


def departure_shortfall_kwh(vehicle: VehicleInputs, energy_kwh: NDArray[np.float64]) -> float:
    """How far the plan leaves ``vehicle`` below its departure need, at worst: the largest
    ``departure_need_kwh[t] − e[t]`` over the intervals that end with a departure (0 when
    every need is met). The need alone (trip + departure floor), not the interval's floor:
    that also holds the backup reserve, which a departure does not need."""
    departs = vehicle.departure_need_kwh > 0
    if not departs.any():
        return 0.0
    return max(float((vehicle.departure_need_kwh[departs] - energy_kwh[departs]).max()), 0.0)


def _max(values: NDArray[np.float64]) -> float:
    return float(values.max()) if values.size else 0.0


def empty_plan(inputs: SiteInputs, status: SolveStatus) -> Plan:
    """A plan with no power anywhere, for a solve that found none."""
    zeros = np.zeros(inputs.n_steps)
    nan = float("nan")
    return Plan(
        site_id=inputs.site_id,
        start=inputs.start,
        step=inputs.step,
        status=status,
        vehicles=tuple(
            VehiclePlan(v.vehicle_id, v.evse_id, zeros, zeros, zeros, nan, nan, nan)
            for v in inputs.vehicles
        ),
        site_net_power_kw=zeros,
        pv_kw=inputs.pv_kw,
        objective=ObjectiveTerms(nan, nan, nan, nan, nan, nan, nan, nan),
    )
