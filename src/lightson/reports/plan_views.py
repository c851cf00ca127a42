"""A plan as a readable table and as a self-contained JSON document.

The JSON document holds the inputs the LP saw (prices, loads, availability, limits per
interval) and every constant of its objective (the shortfall penalty as raised, the
tie-breakers) next to the plan, so another tool can rebuild the objective and check the
plan without our code (``docs/formulation.md``).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.plan import ObjectiveTerms, Plan
from lightson.optimize.inputs import EARLY_CHARGE_CAP_H, TERMINAL_VALUE_MARGIN, SiteInputs
from lightson.optimize.model import shortfall_penalty

PLAN_DOCUMENT_SCHEMA = "lightson.plan/1"


def plan_document(inputs: SiteInputs, plan: Plan, tz: ZoneInfo) -> dict[str, Any]:
    """Inputs and plan of one site as plain JSON-ready values (lists, numbers, strings)."""
    starts = [plan.interval_start(t) for t in range(plan.n_steps)]
    return {
        "schema": PLAN_DOCUMENT_SCHEMA,
        "site_id": plan.site_id,
        "sign_convention": "vehicle power: + charges the vehicle, - discharges it; "
        "site net power: + imports from the grid, - exports",
        "timezone": tz.key,
        "interval_starts_utc": [s.isoformat() for s in starts],
        "step_h": inputs.step_h,
        "inputs": _inputs_dict(inputs),
        "plan": {
            "status": plan.status.value,
            "site_net_power_kw": _list(plan.site_net_power_kw),
            "pv_kw": _list(plan.pv_kw),
            "vehicles": [
                {
                    "vehicle_id": v.vehicle_id,
                    "evse_id": v.evse_id,
                    "power_kw": _list(v.power_kw),
                    "energy_kwh_end_of_interval": _list(v.energy_kwh),
                    "soc_end_of_interval": _list(v.soc),
                    "floor_shortfall_kwh": v.floor_shortfall_kwh,
                    "departure_shortfall_kwh": v.departure_shortfall_kwh,
                    "unserved_trip_kwh": v.unserved_trip_kwh,
                }
                for v in plan.vehicles
            ],
            "objective_usd": plan.objective.as_dict(),
            # What the LP minimised: total_usd plus the tie-breaker (docs/formulation.md).
            "lp_objective_usd": plan.objective.total_usd + plan.objective.early_charge_usd,
            "solve_time_s": plan.solve_time_s,
        },
    }


def _inputs_dict(inputs: SiteInputs) -> dict[str, Any]:
    return {
        "load_kw": _list(inputs.load_kw),
        "pv_kw": _list(inputs.pv_kw),
        "import_price_usd_per_kwh": _list(inputs.import_price_usd_per_kwh),
        "export_credit_usd_per_kwh": _list(inputs.export_credit_usd_per_kwh),
        "dr_value_usd_per_kwh": _list(inputs.dr_value_usd_per_kwh),
        "service_limit_kw": inputs.service_limit_kw,
        "export_permitted": inputs.export_permitted,
        "demand_usd_per_kw_month": inputs.demand_usd_per_kw_month,
        "billing_period": [int(p) for p in inputs.billing_period],
        "peak_so_far_kw": inputs.peak_so_far_kw,
        "peak_expected_kw": inputs.peak_expected_kw,
        "peak_margin_kw": _list(inputs.peak_margin),
        "fixed_charge_usd": inputs.fixed_charge_usd,
        # M as the LP used it (raised where the prices need it), and as configured.
        "shortfall_penalty_usd_per_kwh": shortfall_penalty(inputs),
        "configured_shortfall_penalty_usd_per_kwh": inputs.shortfall_penalty_usd_per_kwh,
        "early_charge_usd_per_kwh_h": inputs.early_charge_usd_per_kwh_h,
        "early_charge_cap_h": EARLY_CHARGE_CAP_H,
        "terminal_value_margin": TERMINAL_VALUE_MARGIN,
        "vehicles": [
            {
                "vehicle_id": v.vehicle_id,
                "evse_id": v.evse_id,
                "battery_kwh": v.battery_kwh,
                "initial_energy_kwh": v.initial_energy_kwh,
                "max_energy_kwh": v.max_energy_kwh,
                "floor_kwh": _list(v.floor_kwh),
                "departure_need_kwh": _list(v.departure_need_kwh),
                "plugged": [bool(p) for p in v.plugged],
                "max_charge_kw": _list(v.max_charge_kw),
                "max_discharge_kw": _list(v.max_discharge_kw),
                "trip_energy_kwh": _list(v.trip_energy_kwh),
                "charge_efficiency": v.charge_efficiency,
                "discharge_efficiency": v.discharge_efficiency,
                "degradation_usd_per_kwh": v.degradation_usd_per_kwh,
                "terminal_value_usd_per_kwh": v.terminal_value_usd_per_kwh,
                "vehicle_max_charge_kw": v.vehicle_max_charge_kw,
                "vehicle_max_discharge_kw": v.vehicle_max_discharge_kw,
                "charger_max_charge_kw": v.charger_max_charge_kw,
                "charger_max_discharge_kw": v.charger_max_discharge_kw,
            }
            for v in inputs.vehicles
        ],
    }


def _list(values: NDArray[np.float64]) -> list[float]:
    return [round(float(x), 6) for x in values]


def plan_table(inputs: SiteInputs, plan: Plan, tz: ZoneInfo) -> str:
    """Hour-by-hour table (means over each hour; SoC at the end of the hour), then the
    objective terms and each vehicle's outcome."""
    per_hour = max(1, round(1.0 / inputs.step_h))
    lines = [
        f"Plan for site {plan.site_id}: {plan.status.value}, "
        f"{plan.n_steps} intervals of {inputs.step_h * 60:g} min from "
        f"{plan.start.astimezone(tz):%Y-%m-%d %H:%M %Z} "
        f"(solved in {plan.solve_time_s * 1000:.1f} ms)",
        "Power in kW: vehicles + charge / - discharge; grid + import / - export. SoC at hour end.",
        "",
    ]
    vehicle_heads = "".join(f"{v.vehicle_id[:10]:>11}{'soc':>5}" for v in plan.vehicles)
    lines.append(
        f"{'hour':<11}{'$/kWh':>6}{'event':>6}{'load':>7}{'pv':>6}{vehicle_heads}{'grid':>8}"
    )
    for first in range(0, plan.n_steps, per_hour):
        hour = slice(first, min(first + per_hour, plan.n_steps))
        last = hour.stop - 1
        event = "DR" if inputs.dr_value_usd_per_kwh[hour].any() else ""
        cells = "".join(
            f"{v.power_kw[hour].mean():>11.1f}{v.soc[last] * 100:>4.0f}%" for v in plan.vehicles
        )
        lines.append(
            f"{plan.interval_start(first).astimezone(tz):%m-%d %H:%M} "
            f"{inputs.import_price_usd_per_kwh[hour].mean():>6.3f}{event:>6}"
            f"{inputs.load_kw[hour].mean():>7.1f}{plan.pv_kw[hour].mean():>6.1f}"
            f"{cells}{plan.site_net_power_kw[hour].mean():>8.1f}"
        )
    lines += ["", *objective_lines(plan.objective)]
    lines += ["", "Vehicles:"]
    for v, vin in zip(plan.vehicles, inputs.vehicles, strict=True):
        note = (
            "needs met"
            if v.floor_shortfall_kwh < 1e-6 and v.unserved_trip_kwh < 1e-6
            else (
                f"SHORT by {v.floor_shortfall_kwh:.1f} kWh "
                f"(departure {v.departure_shortfall_kwh:.1f} kWh, "
                f"unserved trip energy {v.unserved_trip_kwh:.1f} kWh)"
            )
        )
        charged_kwh = float(np.clip(v.power_kw, 0, None).sum()) * inputs.step_h
        discharged_kwh = float(np.clip(-v.power_kw, 0, None).sum()) * inputs.step_h
        lines.append(
            f"  {v.vehicle_id:<14} at {v.evse_id:<18} "
            f"SoC {vin.initial_energy_kwh / vin.battery_kwh:.0%} -> {v.soc[-1]:.0%}; "
            f"charged {charged_kwh:.1f} kWh, discharged {discharged_kwh:.1f} kWh; {note}"
        )
    return "\n".join(lines)


def objective_lines(objective: ObjectiveTerms) -> list[str]:
    """The objective's money terms and their ``total_usd``, then, below the total and said
    to be outside it, the early-charging tie-breaker and the LP objective it makes."""
    terms = objective.as_dict()
    total = terms.pop("total_usd")
    early = terms.pop("early_charge_usd")
    return [
        "Objective over the horizon (USD; revenues shown positive, subtracted in total_usd):",
        *(f"  {name:<24}{value:>12.2f}" for name, value in terms.items()),
        f"  {'total_usd':<24}{total:>12.2f}",
        "Outside total_usd (a tie-breaker, not money):",
        f"  {'early_charge_usd':<24}{early:>12.2f}",
        f"  {'lp_objective_usd':<24}{total + early:>12.2f}  (total_usd + early_charge_usd)",
    ]
