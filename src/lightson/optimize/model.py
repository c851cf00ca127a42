"""The site LP, built as a recipe of named steps over labelled variable blocks.

Constraint and variable names match ``docs/formulation.md``. The matrix is assembled
vectorized (COO triplets → ``scipy.sparse``), never one Python call per variable.
Vehicle blocks are laid out vehicle-major: column ``offset + v·T + t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from lightson.optimize.inputs import EARLY_CHARGE_CAP_H, SiteInputs

INF = float("inf")


@dataclass(frozen=True, eq=False)
class LinearProgram:
    """``min cost·x + offset`` s.t. ``row_lower ≤ A x ≤ row_upper``, ``col_lower ≤ x ≤ col_upper``.

    ``columns`` and ``rows`` map block names to their slices."""

    cost: NDArray[np.float64]
    offset: float
    col_lower: NDArray[np.float64]
    col_upper: NDArray[np.float64]
    matrix: sp.csc_matrix
    row_lower: NDArray[np.float64]
    row_upper: NDArray[np.float64]
    columns: dict[str, slice]
    rows: dict[str, slice]

    @property
    def n_cols(self) -> int:
        return int(self.cost.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.shape[0])


@dataclass
class _Builder:
    cost: list[NDArray[np.float64]] = field(default_factory=list)
    lower: list[NDArray[np.float64]] = field(default_factory=list)
    upper: list[NDArray[np.float64]] = field(default_factory=list)
    columns: dict[str, slice] = field(default_factory=dict)
    n_cols: int = 0
    triplets: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = field(
        default_factory=list
    )
    row_lower: list[NDArray[np.float64]] = field(default_factory=list)
    row_upper: list[NDArray[np.float64]] = field(default_factory=list)
    rows: dict[str, slice] = field(default_factory=dict)
    n_rows: int = 0
    offset: float = 0.0

    def add_columns(
        self, name: str, lower: NDArray[np.float64], upper: NDArray[np.float64]
    ) -> slice:
        size = lower.shape[0]
        block = slice(self.n_cols, self.n_cols + size)
        self.columns[name] = block
        self.lower.append(np.asarray(lower, dtype=float))
        self.upper.append(np.asarray(upper, dtype=float))
        self.cost.append(np.zeros(size))
        self.n_cols += size
        return block

    def set_cost(self, name: str, cost: NDArray[np.float64]) -> None:
        index = list(self.columns).index(name)
        self.cost[index] = self.cost[index] + cost

    def add_rows(
        self,
        name: str,
        terms: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]],
        lower: NDArray[np.float64],
        upper: NDArray[np.float64],
    ) -> None:
        """Rows ``lower ≤ Σ coef·x ≤ upper``; ``terms`` hold (local row, column, coef)."""
        size = lower.shape[0]
        self.rows[name] = slice(self.n_rows, self.n_rows + size)
        for row, col, coef in terms:
            self.triplets.append(
                (row + self.n_rows, col, np.broadcast_to(coef, row.shape).astype(float))
            )
        self.row_lower.append(np.asarray(lower, dtype=float))
        self.row_upper.append(np.asarray(upper, dtype=float))
        self.n_rows += size

    def finish(self) -> LinearProgram:
        rows = np.concatenate([t[0] for t in self.triplets])
        cols = np.concatenate([t[1] for t in self.triplets])
        vals = np.concatenate([t[2] for t in self.triplets])
        matrix = sp.csc_matrix((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))
        return LinearProgram(
            cost=np.concatenate(self.cost),
            offset=self.offset,
            col_lower=np.concatenate(self.lower),
            col_upper=np.concatenate(self.upper),
            matrix=matrix,
            row_lower=np.concatenate(self.row_lower),
            row_upper=np.concatenate(self.row_upper),
            columns=dict(self.columns),
            rows=dict(self.rows),
        )


def build_model(inputs: SiteInputs) -> LinearProgram:
    """The site LP of ``docs/formulation.md`` for ``inputs``."""
    lp = _Builder()
    add_vehicle_variables(lp, inputs)
    add_site_variables(lp, inputs)
    add_soc_balance(lp, inputs)
    add_soc_floor(lp, inputs)
    add_site_balance(lp, inputs)
    add_peak_demand(lp, inputs)
    add_objective(lp, inputs)
    return lp.finish()


def _stack(inputs: SiteInputs, name: str) -> NDArray[np.float64]:
    """Per-vehicle arrays stacked vehicle-major into one vector of length V·T."""
    if not inputs.vehicles:
        return np.zeros(0)
    return np.concatenate([np.asarray(getattr(v, name), dtype=float) for v in inputs.vehicles])


def _per_vehicle(inputs: SiteInputs, name: str) -> NDArray[np.float64]:
    """A scalar of each vehicle repeated over the intervals (length V·T)."""
    values = np.array([getattr(v, name) for v in inputs.vehicles], dtype=float)
    return np.repeat(values, inputs.n_steps)


def add_vehicle_variables(lp: _Builder, inputs: SiteInputs) -> None:
    """charge_limit, discharge_limit, soc_window (upper side), trip_unserved bounds."""
    vt = len(inputs.vehicles) * inputs.n_steps
    zeros = np.zeros(vt)
    initial = _per_vehicle(inputs, "initial_energy_kwh")
    lp.add_columns("charge_kw", zeros, _stack(inputs, "max_charge_kw"))
    lp.add_columns("discharge_kw", zeros, _stack(inputs, "max_discharge_kw"))
    lp.add_columns("energy_kwh", zeros, np.maximum(_per_vehicle(inputs, "max_energy_kwh"), initial))
    lp.add_columns("floor_shortfall_kwh", zeros, np.full(vt, INF))
    lp.add_columns("trip_unserved_kwh", zeros, _stack(inputs, "trip_energy_kwh"))


def add_site_variables(lp: _Builder, inputs: SiteInputs) -> None:
    """service_limit and no_export bounds; the billing-period peaks.

    PV is not ours to curtail: its surplus over the load may always leave the site (the PV
    system's own interconnection), so without V2X export permission the export bound is that
    surplus, and vehicles can never add to it."""
    n = inputs.n_steps
    pv_surplus_kw = np.maximum(inputs.pv_kw - inputs.load_kw, 0.0)
    import_cap = np.maximum(inputs.service_limit_kw, inputs.load_kw - inputs.pv_kw)
    export_cap = (
        np.maximum(inputs.service_limit_kw, pv_surplus_kw)
        if inputs.export_permitted
        else pv_surplus_kw
    )
    lp.add_columns("grid_import_kw", np.zeros(n), import_cap)
    lp.add_columns("grid_export_kw", np.zeros(n), export_cap)
    if inputs.demand_usd_per_kw_month > 0:
        peak_lower = np.zeros(inputs.n_billing_periods)
        peak_lower[0] = inputs.peak_floor_kw
        lp.add_columns("peak_kw", peak_lower, np.full(inputs.n_billing_periods, INF))


def add_soc_balance(lp: _Builder, inputs: SiteInputs) -> None:
    """soc_balance: e[v,t] − e[v,t−1] − η_c·Δt·c[v,t] + Δt/η_d·d[v,t] − u[v,t] = −trip[v,t]
    (with e[v,−1] = initial energy moved to the right-hand side)."""
    n, vt = inputs.n_steps, len(inputs.vehicles) * inputs.n_steps
    if vt == 0:
        return
    row = np.arange(vt)
    t = row % n
    has_previous = t > 0
    col = lp.columns
    rhs = -_stack(inputs, "trip_energy_kwh")
    rhs[t == 0] += _per_vehicle(inputs, "initial_energy_kwh")[t == 0]
    lp.add_rows(
        "soc_balance",
        [
            (row, col["energy_kwh"].start + row, np.ones(vt)),
            (
                row[has_previous],
                col["energy_kwh"].start + row[has_previous] - 1,
                -np.ones(vt)[has_previous],
            ),
            (
                row,
                col["charge_kw"].start + row,
                -_per_vehicle(inputs, "charge_efficiency") * inputs.step_h,
            ),
            (
                row,
                col["discharge_kw"].start + row,
                inputs.step_h / _per_vehicle(inputs, "discharge_efficiency"),
            ),
            (row, col["trip_unserved_kwh"].start + row, -np.ones(vt)),
        ],
        rhs,
        rhs,
    )


def add_soc_floor(lp: _Builder, inputs: SiteInputs) -> None:
    """soc_floor: e[v,t] + s[v,t] ≥ floor[v,t] (window minimum, reserve, departure need)."""
    vt = len(inputs.vehicles) * inputs.n_steps
    if vt == 0:
        return
    row = np.arange(vt)
    lp.add_rows(
        "soc_floor",
        [
            (row, lp.columns["energy_kwh"].start + row, np.ones(vt)),
            (row, lp.columns["floor_shortfall_kwh"].start + row, np.ones(vt)),
        ],
        _stack(inputs, "floor_kwh"),
        np.full(vt, INF),
    )


def add_site_balance(lp: _Builder, inputs: SiteInputs) -> None:
    """site_balance: g_imp[t] − g_exp[t] − Σ_v c[v,t] + Σ_v d[v,t] = load[t] − pv[t]."""
    n, vt = inputs.n_steps, len(inputs.vehicles) * inputs.n_steps
    t = np.arange(n)
    vehicle_row = np.arange(vt) % n if vt else np.zeros(0, dtype=np.int64)
    col = lp.columns
    lp.add_rows(
        "site_balance",
        [
            (t, col["grid_import_kw"].start + t, np.ones(n)),
            (t, col["grid_export_kw"].start + t, -np.ones(n)),
            (vehicle_row, col["charge_kw"].start + np.arange(vt), -np.ones(vt)),
            (vehicle_row, col["discharge_kw"].start + np.arange(vt), np.ones(vt)),
        ],
        inputs.load_kw - inputs.pv_kw,
        inputs.load_kw - inputs.pv_kw,
    )


def add_peak_demand(lp: _Builder, inputs: SiteInputs) -> None:
    """peak_demand: peak[m(t)] − g_imp[t] ≥ margin[t] for each interval t of billing period
    m(t): the import plus the load's upper-quantile margin stays under the period's peak."""
    if "peak_kw" not in lp.columns:
        return
    n = inputs.n_steps
    t = np.arange(n)
    lp.add_rows(
        "peak_demand",
        [
            (t, lp.columns["peak_kw"].start + inputs.billing_period, np.ones(n)),
            (t, lp.columns["grid_import_kw"].start + t, -np.ones(n)),
        ],
        inputs.peak_margin,
        np.full(n, INF),
    )


PENALTY_DOMINANCE = 2.0


def shortfall_penalty(inputs: SiteInputs) -> float:
    """``M``, raised where the site's prices need it so that missing a floor never pays.

    A kWh short of the floor for one interval costs ``M·Δt``; the dearest way to put that kWh
    into the battery in that interval is to buy ``1/η`` kWh at the highest price (and forgo the
    highest DR value and export credit) while raising every billing month's peak by
    ``1/(Δt·η)`` kW. ``M`` is at least twice that over ``Δt``, whatever the configured value:
    with a 27 $/kW-month demand charge and 15-minute steps that is about 990 $/kWh, not 100.
    """
    if not inputs.vehicles:
        return inputs.shortfall_penalty_usd_per_kwh
    eta = min(v.charge_efficiency for v in inputs.vehicles)
    dt = inputs.step_h
    energy_usd_per_kwh = (
        _max(inputs.import_price_usd_per_kwh)
        + _max(inputs.dr_value_usd_per_kwh)
        + _max(inputs.export_credit_usd_per_kwh)
    ) / eta
    demand_usd_per_kwh = inputs.demand_usd_per_kw_month * inputs.n_billing_periods / (dt * eta)
    worst_usd_per_kwh = energy_usd_per_kwh + demand_usd_per_kwh
    return max(inputs.shortfall_penalty_usd_per_kwh, PENALTY_DOMINANCE * worst_usd_per_kwh / dt)


def _max(values: NDArray[np.float64]) -> float:
    return max(float(values.max()), 0.0) if values.size else 0.0


def floor_shortfall_cost(inputs: SiteInputs) -> NDArray[np.float64]:
    """Cost per kWh of floor shortfall in each (vehicle, interval): ``M·Δt`` (per kWh-hour,
    so the same shortfall costs the same at any step length) plus ``M`` once more at an
    interval that ends with a departure (``M`` from :func:`shortfall_penalty`)."""
    penalty = shortfall_penalty(inputs)
    departs = _stack(inputs, "departure_need_kwh") > 0
    return penalty * inputs.step_h + penalty * departs.astype(float)


def early_charge_cost(inputs: SiteInputs) -> NDArray[np.float64]:
    """The tie-breaker's cost per kW of charge, vehicle-major like the charge columns:
    ``ε · min(t·Δt, cap) · Δt`` (``EARLY_CHARGE_USD_PER_KWH_H``; docs/formulation.md).
    Measured on four weeks of January (ma-2026): the demand charges v2x-mpc left to pay
    fell by a fifth, and the value it captures from 75 % to 98 % of perfect foresight's."""
    delay_h = np.minimum(np.arange(inputs.n_steps) * inputs.step_h, EARLY_CHARGE_CAP_H)
    per_step = inputs.early_charge_usd_per_kwh_h * delay_h * inputs.step_h
    return np.tile(per_step, len(inputs.vehicles))


def add_objective(lp: _Builder, inputs: SiteInputs) -> None:
    """Energy cost − export credit + demand charge + fixed + degradation − DR revenue
    − terminal energy value + shortfall penalty + the early-charging tie-breaker (see
    ``docs/formulation.md``, objective)."""
    dt = inputs.step_h
    dr_value = np.tile(inputs.dr_value_usd_per_kwh, len(inputs.vehicles))
    degradation = _per_vehicle(inputs, "degradation_usd_per_kwh") / _per_vehicle(
        inputs, "discharge_efficiency"
    )
    penalty = shortfall_penalty(inputs)
    lp.set_cost("charge_kw", dr_value * dt + early_charge_cost(inputs))
    lp.set_cost("discharge_kw", (degradation - dr_value) * dt)
    vt = len(inputs.vehicles) * inputs.n_steps
    terminal = np.zeros(vt)
    terminal[inputs.n_steps - 1 :: inputs.n_steps] = [
        -v.terminal_value_usd_per_kwh for v in inputs.vehicles
    ]
    lp.set_cost("energy_kwh", terminal)
    lp.set_cost("floor_shortfall_kwh", floor_shortfall_cost(inputs))
    lp.set_cost("trip_unserved_kwh", np.full(vt, penalty))
    lp.set_cost("grid_import_kw", inputs.import_price_usd_per_kwh * dt)
    lp.set_cost("grid_export_kw", -inputs.export_credit_usd_per_kwh * dt)
    lp.offset = inputs.fixed_charge_usd
    if "peak_kw" in lp.columns:
        lp.set_cost("peak_kw", np.full(inputs.n_billing_periods, inputs.demand_usd_per_kw_month))
        lp.offset -= inputs.demand_usd_per_kw_month * inputs.peak_floor_kw
