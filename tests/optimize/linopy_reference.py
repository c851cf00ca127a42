"""An independent second route to the site LP: ``docs/formulation.md`` written in linopy.

Built from ``SiteInputs`` alone over labelled dimensions (``vehicle`` × ``time``, and
``period`` for the billing months), without anything from ``lightson.optimize.model``,
``solve`` or ``extract``. It is written from the formulation document, not translated from
``model.py``, so that a disagreement between the two routes points at a mistake in one of
them. The tests compare its optimum with ``plan_site(inputs).objective``'s ``total_usd`` plus
its ``early_charge_usd`` (the tie-breaker, which the reported total leaves out); the
benchmark (``bench/bench_optimizer.py``) times it against our scipy.sparse + highspy route.

Returned objective (USD), with the constant ``F − D·P₀`` added back:

    Σ_t π_t·Δt·g^imp_t − Σ_t ξ_t·Δt·g^exp_t + D·(Σ_m P_m − P₀) + F
    + Σ_{v,t} κ_v/η^d_v·Δt·d_{v,t} − Σ_t δ_t·Δt·Σ_v (d_{v,t} − c_{v,t})
    − Σ_v ω_v·e_{v,T−1} + M·Σ_{v,t} (s_{v,t} + u_{v,t}) + ε·Σ_{v,t} min(t·Δt, 36 h)·Δt·c_{v,t}
"""

from __future__ import annotations

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from lightson.optimize.inputs import SiteInputs


class ReferenceSolveError(RuntimeError):
    """The linopy route did not reach an optimum (the site LP always has one)."""


def build_linopy_model(inputs: SiteInputs) -> tuple[linopy.Model, float]:
    """The site LP of ``docs/formulation.md`` as a linopy model, and the objective's
    constant ``F − D·P₀`` (USD) that linopy is not given."""
    model = linopy.Model()
    axes = _Axes(inputs)
    variables = _add_variables(model, inputs, axes)
    _add_constraints(model, inputs, axes, variables)
    model.add_objective(_objective(inputs, axes, variables))
    constant_usd = inputs.fixed_charge_usd
    if inputs.demand_usd_per_kw_month > 0:
        constant_usd -= inputs.demand_usd_per_kw_month * max(
            inputs.peak_so_far_kw, inputs.peak_expected_kw
        )
    return model, constant_usd


def solve_with_linopy(inputs: SiteInputs, io_api: str = "direct") -> float:
    """Optimal objective (USD, constants included) of the site LP, via linopy + HiGHS.

    Comparable to ``lightson.optimize.plan_site(inputs).objective.total_usd``."""
    model, constant_usd = build_linopy_model(inputs)
    status, condition = model.solve(solver_name="highs", io_api=io_api, output_flag=False)
    optimum_usd = model.objective.value
    if status != "ok" or condition != "optimal" or optimum_usd is None:
        raise ReferenceSolveError(f"linopy/HiGHS ended with {status}/{condition}")
    return float(optimum_usd) + constant_usd


class _Axes:
    """Labelled coordinates and the inputs as xarray data over them."""

    def __init__(self, inputs: SiteInputs) -> None:
        n_steps = inputs.load_kw.shape[0]
        self.time = pd.RangeIndex(n_steps, name="time")
        self.vehicle = pd.Index([str(i) for i in range(len(inputs.vehicles))], name="vehicle")
        self.period = pd.RangeIndex(int(inputs.billing_period.max()) + 1, name="period")
        self.dt_h = inputs.step_h

    def site(self, values: object) -> xr.DataArray:
        """A per-interval array over ``time``."""
        return xr.DataArray(np.asarray(values, dtype=float), coords=[self.time])

    def fleet(self, inputs: SiteInputs, name: str) -> xr.DataArray:
        """A per-vehicle, per-interval field over ``vehicle`` × ``time``."""
        rows = [np.asarray(getattr(v, name), dtype=float) for v in inputs.vehicles]
        values = np.vstack(rows) if rows else np.zeros((0, len(self.time)))
        return xr.DataArray(values, coords=[self.vehicle, self.time])

    def each_vehicle(self, inputs: SiteInputs, name: str) -> xr.DataArray:
        """A per-vehicle scalar over ``vehicle``."""
        values = np.array([float(getattr(v, name)) for v in inputs.vehicles])
        return xr.DataArray(values, coords=[self.vehicle])


def _add_variables(
    model: linopy.Model, inputs: SiteInputs, axes: _Axes
) -> dict[str, linopy.Variable]:
    """Column blocks with their bounds (charge_limit, discharge_limit, soc_window,
    service_limit, no_export with the PV surplus allowed out, and the billing-period peaks)."""
    fleet_coords = [axes.vehicle, axes.time]
    zero_fleet = xr.DataArray(np.zeros((len(axes.vehicle), len(axes.time))), coords=fleet_coords)
    energy_cap_kwh = np.maximum(
        axes.each_vehicle(inputs, "max_energy_kwh"),
        axes.each_vehicle(inputs, "initial_energy_kwh"),
    )
    service_kw = inputs.service_limit_kw
    pv_surplus_kw = np.maximum(inputs.pv_kw - inputs.load_kw, 0.0)
    variables = {
        "charge_kw": model.add_variables(
            0.0, axes.fleet(inputs, "max_charge_kw"), name="charge_kw"
        ),
        "discharge_kw": model.add_variables(
            0.0, axes.fleet(inputs, "max_discharge_kw"), name="discharge_kw"
        ),
        "energy_kwh": model.add_variables(0.0, zero_fleet + energy_cap_kwh, name="energy_kwh"),
        "floor_shortfall_kwh": model.add_variables(zero_fleet, np.inf, name="floor_shortfall_kwh"),
        "trip_unserved_kwh": model.add_variables(
            0.0, axes.fleet(inputs, "trip_energy_kwh"), name="trip_unserved_kwh"
        ),
        "grid_import_kw": model.add_variables(
            0.0,
            axes.site(np.maximum(service_kw, inputs.load_kw - inputs.pv_kw)),
            name="grid_import_kw",
        ),
        "grid_export_kw": model.add_variables(
            0.0,
            axes.site(
                np.maximum(service_kw, pv_surplus_kw) if inputs.export_permitted else pv_surplus_kw
            ),
            name="grid_export_kw",
        ),
    }
    if inputs.demand_usd_per_kw_month > 0:
        peak_floor_kw = np.zeros(len(axes.period))
        peak_floor_kw[0] = max(inputs.peak_so_far_kw, inputs.peak_expected_kw)
        variables["peak_kw"] = model.add_variables(
            xr.DataArray(peak_floor_kw, coords=[axes.period]), np.inf, name="peak_kw"
        )
    return variables


def _add_constraints(
    model: linopy.Model, inputs: SiteInputs, axes: _Axes, x: dict[str, linopy.Variable]
) -> None:
    """soc_balance, soc_floor, site_balance and peak_demand."""
    c, d, e = x["charge_kw"], x["discharge_kw"], x["energy_kwh"]
    dt = axes.dt_h
    if len(axes.vehicle):
        eta_c = axes.each_vehicle(inputs, "charge_efficiency")
        eta_d = axes.each_vehicle(inputs, "discharge_efficiency")
        trip_kwh = axes.fleet(inputs, "trip_energy_kwh")
        # e[v,−1] = E⁰_v: the shifted variable is absent at t = 0, E⁰ enters the right side.
        initial_kwh = axes.each_vehicle(inputs, "initial_energy_kwh") * xr.DataArray(
            (np.arange(len(axes.time)) == 0).astype(float), coords=[axes.time]
        )
        previous_e = e.shift(time=1).fillna(0)
        model.add_constraints(
            e - previous_e - eta_c * dt * c + (dt / eta_d) * d - x["trip_unserved_kwh"]
            == initial_kwh - trip_kwh,
            name="soc_balance",
        )
        model.add_constraints(
            e + x["floor_shortfall_kwh"] >= axes.fleet(inputs, "floor_kwh"), name="soc_floor"
        )
        site_lhs = x["grid_import_kw"] - x["grid_export_kw"] + (d - c).sum("vehicle")
    else:
        site_lhs = x["grid_import_kw"] - x["grid_export_kw"]
    model.add_constraints(site_lhs == axes.site(inputs.load_kw - inputs.pv_kw), name="site_balance")
    if "peak_kw" in x:
        for m in axes.period:
            in_period = np.flatnonzero(inputs.billing_period == m)
            if in_period.size:
                margin = axes.site(inputs.peak_margin).isel(time=in_period)
                model.add_constraints(
                    x["grid_import_kw"].isel(time=in_period) + margin <= x["peak_kw"].sel(period=m),
                    name=f"peak_demand_{m}",
                )


def _objective(
    inputs: SiteInputs, axes: _Axes, x: dict[str, linopy.Variable]
) -> linopy.LinearExpression:
    """The objective of ``docs/formulation.md`` without its constant ``F − D·P₀``."""
    dt = axes.dt_h
    price = axes.site(inputs.import_price_usd_per_kwh)
    credit = axes.site(inputs.export_credit_usd_per_kwh)
    objective: linopy.LinearExpression = (price * dt * x["grid_import_kw"]).sum() - (
        credit * dt * x["grid_export_kw"]
    ).sum()
    if "peak_kw" in x:
        objective = objective + (inputs.demand_usd_per_kw_month * x["peak_kw"]).sum()
    if len(axes.vehicle):
        c, d, e = x["charge_kw"], x["discharge_kw"], x["energy_kwh"]
        wear = axes.each_vehicle(inputs, "degradation_usd_per_kwh") / axes.each_vehicle(
            inputs, "discharge_efficiency"
        )
        dr_value = axes.site(inputs.dr_value_usd_per_kwh)
        terminal = axes.each_vehicle(inputs, "terminal_value_usd_per_kwh")
        penalty = _penalty(inputs)
        departs = (axes.fleet(inputs, "departure_need_kwh") > 0).astype(float)
        objective = (
            objective
            + (wear * dt * d).sum()
            - (dr_value * dt * (d - c)).sum()
            - (terminal * e.isel(time=-1)).sum()
            + (penalty * (dt + departs) * x["floor_shortfall_kwh"]).sum()
            + penalty * x["trip_unserved_kwh"].sum()
        )
        # The early-charging tie-breaker: ε per kWh for each hour of delay, at most 36 hours.
        delay_h = np.minimum(np.arange(inputs.n_steps) * dt, 36.0)
        early = axes.site(inputs.early_charge_usd_per_kwh_h * delay_h * dt)
        objective = objective + (early * c).sum()
    return objective


def _penalty(inputs: SiteInputs) -> float:
    """M as docs/formulation.md defines it (written out again here, not imported)."""
    if not inputs.vehicles:
        return inputs.shortfall_penalty_usd_per_kwh
    eta = min(v.charge_efficiency for v in inputs.vehicles)
    highest = sum(
        max(float(np.max(a)), 0.0)
        for a in (
            inputs.import_price_usd_per_kwh,
            inputs.dr_value_usd_per_kwh,
            inputs.export_credit_usd_per_kwh,
        )
    )
    months = int(inputs.billing_period.max()) + 1
    worst = highest / eta + inputs.demand_usd_per_kw_month * months / (inputs.step_h * eta)
    return max(inputs.shortfall_penalty_usd_per_kwh, 2.0 * worst / inputs.step_h)
