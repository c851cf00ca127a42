"""A plan as a figure: site power flows, each vehicle's power, SoC, price and events."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from lightson.domain.plan import Plan
from lightson.optimize.inputs import SiteInputs


def write_plan_figure(inputs: SiteInputs, plan: Plan, tz: ZoneInfo, path: Path) -> Path:
    """Write a PNG (or any format matplotlib knows from the suffix) of the plan to ``path``."""
    starts = mdates.date2num([plan.interval_start(t) for t in range(plan.n_steps + 1)])  # type: ignore[no-untyped-call]
    figure = Figure(figsize=(11, 10))
    flows, vehicles, soc, price = figure.subplots(4, 1, sharex=True, height_ratios=[3, 2, 2, 1.2])
    _step(flows, starts, inputs.load_kw, "building load", "tab:gray")
    _step(flows, starts, plan.pv_kw, "PV", "gold")
    _step(flows, starts, plan.site_net_power_kw, "grid (+ import)", "black")
    ev_total = (
        np.sum([v.power_kw for v in plan.vehicles], axis=0)
        if plan.vehicles
        else np.zeros(plan.n_steps)
    )
    _step(flows, starts, ev_total, "all vehicles (+ charge)", "tab:blue")
    flows.axhline(0, color="black", linewidth=0.5)
    flows.set_ylabel("kW")
    flows.set_title(
        f"Plan for {plan.site_id} ({plan.status.value}); total ${plan.objective.total_usd:,.2f}"
    )
    for i, vehicle in enumerate(plan.vehicles):
        _step(vehicles, starts, vehicle.power_kw, vehicle.vehicle_id, f"C{i}")
        soc.plot(starts[1:], vehicle.soc * 100, label=vehicle.vehicle_id)
    for v in inputs.vehicles:
        soc.plot(
            starts[1:],
            v.floor_kwh / v.battery_kwh * 100,
            linestyle=":",
            linewidth=1,
            label=f"{v.vehicle_id} floor",
        )
    vehicles.axhline(0, color="black", linewidth=0.5)
    vehicles.set_ylabel("kW (+ charge)")
    soc.set_ylabel("SoC %")
    soc.set_ylim(0, 105)
    _step(price, starts, inputs.import_price_usd_per_kwh, "energy price", "tab:red")
    price.set_ylabel("$/kWh")
    for axis in (flows, vehicles, soc, price):
        _shade_events(axis, starts, inputs.dr_value_usd_per_kwh)
        axis.legend(loc="upper left", fontsize=7, ncol=3)
        axis.grid(alpha=0.3)
    locator = mdates.AutoDateLocator(tz=tz, minticks=6, maxticks=14)  # type: ignore[no-untyped-call]
    price.xaxis.set_major_locator(locator)
    price.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))  # type: ignore[no-untyped-call]
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def _step(
    axis: Axes, starts: NDArray[np.float64], values: NDArray[np.float64], label: str, color: str
) -> None:
    axis.stairs(values, starts, label=label, baseline=None, linewidth=1.4, color=color)


def _shade_events(axis: Axes, starts: NDArray[np.float64], dr_value: NDArray[np.float64]) -> None:
    for t in np.flatnonzero(dr_value > 0):
        axis.axvspan(starts[t], starts[t + 1], color="tab:green", alpha=0.12, linewidth=0)
