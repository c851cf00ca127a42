"""Outage survival as a table and figures: survival curves, and hours of backup by start."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from matplotlib.figure import Figure

from lightson.domain.assets import LoadTier
from lightson.resilience.analysis import SURVIVAL_DURATIONS_H, SurvivalResult


def survival_table(result: SurvivalResult) -> str:
    heads = "".join(f"{f'P(≥{d:g} h)':>11}" for d in SURVIVAL_DURATIONS_H)
    lines = [
        f"Outage survival at {result.site_id}: {len(result.starts)} outage starts (every hour), "
        f"hours each tier is carried by the vehicles plugged in at the start and PV "
        f"(capped at {result.max_hours:g} h).",
        "",
        f"{'tier':<11}{'median h':>10}{'10th pct h':>12}{heads}",
    ]
    for tier in LoadTier:
        hours = result.hours[tier]
        if not hours.size:
            continue
        probabilities = "".join(
            f"{result.probability[tier][d]:>11.0%}" for d in SURVIVAL_DURATIONS_H
        )
        lines.append(
            f"{tier.value:<11}{np.median(hours):>10.1f}"
            f"{np.percentile(hours, 10):>12.1f}{probabilities}"
        )
    return "\n".join(lines)


def write_survival_figures(
    result: SurvivalResult, tier: LoadTier, tz: ZoneInfo, out: Path
) -> list[Path]:
    """``survival.png`` (share of outage starts carried at least x hours, per tier) and
    ``backup-by-start.png`` (hours of ``tier`` by day and hour of the outage's start)."""
    out.mkdir(parents=True, exist_ok=True)
    curve = Figure(figsize=(8, 4.5))
    axis = curve.subplots()
    durations = np.linspace(0, result.max_hours, 289)
    for t in LoadTier:
        hours = result.hours[t]
        if hours.size:
            axis.plot(durations, [np.mean(hours >= d) * 100 for d in durations], label=t.value)
    axis.set_xlabel("outage length, hours")
    axis.set_ylabel("outage starts carried, %")
    axis.set_ylim(0, 102)
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title(f"Outage survival at {result.site_id}")
    survival_path = out / "survival.png"
    curve.savefig(survival_path, dpi=110)

    heat = Figure(figsize=(10, 4))
    axis = heat.subplots()
    local = [s.astimezone(tz) for s in result.starts]
    days = sorted({s.date() for s in local})
    grid = np.full((24, len(days)), np.nan)
    index = {d: i for i, d in enumerate(days)}
    for start, hours in zip(local, result.hours[tier], strict=True):
        grid[start.hour, index[start.date()]] = hours
    image = axis.imshow(
        grid,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        vmin=0,
        vmax=max(1.0, float(np.nanmax(grid))),
        extent=(0, len(days), 0, 24),
    )
    heat.colorbar(image, ax=axis, label=f"hours of {tier.value} load carried")
    axis.set_ylabel("hour of day the outage starts")
    ticks = list(range(0, len(days), max(1, len(days) // 12)))
    axis.set_xticks(
        [t + 0.5 for t in ticks], [days[t].strftime("%b %d") for t in ticks], rotation=45
    )
    axis.set_title(f"Hours of backup by outage start, {result.site_id}")
    heat.tight_layout()
    heat_path = out / "backup-by-start.png"
    heat.savefig(heat_path, dpi=110)
    return [survival_path, heat_path]


def write_reserve_figure(
    site_id: str,
    reserves: list[float],
    probabilities: list[float],
    extra_cost_usd: list[float],
    need_hours: float,
    tier: LoadTier,
    target: float,
    out: Path,
) -> Path:
    """``reserve-tradeoff.png``: the share of outage starts carried ``need_hours`` at ``tier``
    (left axis) and the extra net cost over the lowest reserve (right axis), by reserve."""
    out.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(8, 4.5))
    axis = figure.subplots()
    percent = [100 * r for r in reserves]
    axis.plot(percent, [100 * p for p in probabilities], "o-", color="tab:blue")
    axis.axhline(100 * target, color="tab:blue", linestyle=":", linewidth=1)
    axis.set_xlabel("backup reserve kept while plugged in, % state of charge")
    axis.set_ylabel(f"starts carried {need_hours:g} h at {tier.value} tier, %", color="tab:blue")
    axis.set_ylim(0, 102)
    axis.grid(alpha=0.3)
    cost = axis.twinx()
    cost.plot(percent, extra_cost_usd, "s--", color="tab:red")
    cost.set_ylabel("extra net cost over the lowest reserve, $", color="tab:red")
    axis.set_title(f"Reserve trade-off at {site_id}")
    path = out / "reserve-tradeoff.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path
