"""Reserve sizing: the backup reserve (state-of-charge floor kept while plugged in) against
what it buys and what it costs.

For each candidate reserve the site is simulated with the same world (same seed) and the same
controller, then scored twice: the probability that an outage starting at any hour of the
period is carried for ``need_hours`` at ``tier`` (the survival analysis of that run), and the
site's net cost (bill + battery wear − demand-response payment − energy left). The smallest
reserve that reaches the chosen probability is the recommendation; the extra net cost over
the lowest reserve tried is its price.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from lightson.domain.assets import LoadTier, Program
from lightson.resilience.analysis import survival_of_run
from lightson.sim.engine import simulate_site
from lightson.sim.kpis import site_kpis


@dataclass(frozen=True)
class ReservePoint:
    reserve_soc: float
    survival_probability: float
    median_hours: float
    net_cost_usd: float
    dr_payment_usd: float
    bill_usd: float


def with_reserve(program: Program, site_id: str, reserve_soc: float) -> Program:
    """The program with every V2X vehicle of the site keeping ``reserve_soc``."""
    if not 0.0 <= reserve_soc < 1.0:
        raise ValueError("a reserve is a state of charge in [0, 1)")
    sites = tuple(
        replace(
            site,
            vehicles=tuple(
                replace(v, reserve_soc=reserve_soc) if v.v2x_capable else v for v in site.vehicles
            ),
        )
        if site.site_id == site_id
        else site
        for site in program.sites
    )
    return replace(program, sites=sites)


def reserve_tradeoff(
    program: Program,
    site_id: str,
    controller: str,
    start: datetime,
    n_steps: int,
    reserves: Sequence[float],
    tier: LoadTier = LoadTier.CRITICAL,
    need_hours: float = 8.0,
    max_hours: float = 72.0,
    seed: int = 1,
) -> list[ReservePoint]:
    points = []
    for reserve in sorted(reserves):
        variant = with_reserve(program, site_id, reserve)
        run = simulate_site(variant, site_id, controller, start, n_steps, seed)
        kpis, _ = site_kpis(variant, run)
        survival = survival_of_run(
            variant.site(site_id),
            run.start,
            run.step,
            variant.timezone,
            run.load_kw,
            run.pv_kw,
            run.energy_kwh,
            run.plugged,
            max_hours,
        )
        hours = survival.hours[tier]
        points.append(
            ReservePoint(
                reserve_soc=reserve,
                survival_probability=float(np.mean(hours >= need_hours - 1e-9)),
                median_hours=float(np.median(hours)) if hours.size else 0.0,
                net_cost_usd=kpis.net_cost_usd,
                dr_payment_usd=kpis.dr_payment_usd,
                bill_usd=kpis.bill_usd,
            )
        )
    return points


def smallest_reserve(points: Sequence[ReservePoint], probability: float) -> ReservePoint | None:
    """The lowest reserve whose survival probability reaches ``probability`` (None: none)."""
    return next(
        (
            p
            for p in sorted(points, key=lambda p: p.reserve_soc)
            if p.survival_probability >= probability - 1e-12
        ),
        None,
    )
