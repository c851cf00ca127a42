"""Runs of the same world side by side: net cost and bill by controller, against
``unmanaged``, and the value captured (v2x-mpc against perfect foresight)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COMPARED = ("net_cost_usd", "bill_usd", "demand_cost_usd", "dr_payment_usd", "degradation_usd")


def controller_totals(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each run's totals over its sites, by controller (``runs``: ``kpis.json`` documents)."""
    return {
        run["controller"]: {f: float(sum(site[f] for site in run["sites"])) for f in COMPARED}
        for run in runs
    }


def value_captured(totals: Mapping[str, Mapping[str, float]]) -> float | None:
    """(v2x-mpc's saving) ÷ (perfect foresight's saving), both against unmanaged; ``None``
    when a run is missing or foresight saves nothing."""
    base, best, mpc = (totals.get(c) for c in ("unmanaged", "perfect-foresight", "v2x-mpc"))
    if not base or not best or not mpc or base["net_cost_usd"] == best["net_cost_usd"]:
        return None
    gained = base["net_cost_usd"] - mpc["net_cost_usd"]
    return gained / (base["net_cost_usd"] - best["net_cost_usd"])


def compare_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """``runs``: ``kpis.json`` documents of runs of the same program, period and seed."""
    totals = controller_totals(runs)
    lines = [
        f"{'controller':<20}" + "".join(f"{f.removesuffix('_usd') + ' $':>18}" for f in COMPARED)
    ]
    for controller, total in totals.items():
        lines.append(f"{controller:<20}" + "".join(f"{total[f]:>18,.0f}" for f in COMPARED))
    base = totals.get("unmanaged")
    if base:
        lines += ["", "Against unmanaged (negative = cheaper):"]
        for controller, total in totals.items():
            if controller == "unmanaged":
                continue
            change = {f: total[f] - base[f] for f in COMPARED}
            lines.append(
                f"  {controller:<18} net cost {change['net_cost_usd']:>+12,.0f} $"
                f"   bill {change['bill_usd']:>+12,.0f} $"
                f"   demand charges {change['demand_cost_usd']:>+12,.0f} $"
            )
    captured = value_captured(totals)
    if captured is not None:
        lines += [
            "",
            f"Value captured by v2x-mpc: {captured:.0%} of what perfect foresight earns "
            "over unmanaged.",
        ]
    return "\n".join(lines)


def check_comparable(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Reasons the runs can't be compared (different program, start, length or seed)."""
    problems = []
    for key in ("program", "start", "steps", "seed"):
        values = {str(run.get(key)) for run in runs}
        if len(values) > 1:
            problems.append(f"runs differ in {key}: {', '.join(sorted(values))}")
    controllers = [run.get("controller") for run in runs]
    if len(set(controllers)) != len(controllers):
        problems.append("two runs have the same controller")
    return problems
