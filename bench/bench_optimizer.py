"""Optimizer benchmark (``make bench``): build + solve + extract time of the site LP.

Times ``plan_site(inputs)`` (``build_model`` → HiGHS → ``extract_plan``) for one site-day
at 15 minutes (96 intervals): a home with one EV, a school with four buses, a business
with ten EVs, the sequential re-plan of a 100-site program, and (beyond the stated goals)
a business with thirty EVs. The same LPs go through
the independent linopy route (``tests/optimize/linopy_reference.py``, linopy → HiGHS
through its direct highspy interface) side by side, and both optima are compared.
Inputs are built as ``SiteInputs`` directly, deterministic from ``SEED``.

Prints markdown tables; ``docs/benchmarks.md`` holds a run and what it means.
``--profile`` adds a cProfile of ``plan_site`` on the ten-EV business.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.metadata
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lightson.optimize import SiteInputs, VehicleInputs, plan_site
from lightson.optimize.extract import extract_plan
from lightson.optimize.model import build_model
from lightson.optimize.solve import solve

ROOT = Path(__file__).resolve().parent.parent
SEED = 20260610
STEP_H = 0.25
N_STEPS = 96
HOUR_H = np.arange(N_STEPS) * STEP_H  # local clock time at each interval start
START = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)  # a Wednesday, 00:00 in Boston (EDT)
DAYS_PER_MONTH = 365.25 / 12
DR_EVENT = (HOUR_H >= 15.0) & (HOUR_H < 18.0)  # ConnectedSolutions daily dispatch

# Massachusetts numbers of lightson.domain.catalog (flat residential, commercial demand rate).
HOME_PRICE_USD_PER_KWH = 0.33
HOME_FIXED_USD_PER_MONTH = 10.0
BUSINESS_PRICE_USD_PER_KWH = 0.20
BUSINESS_FIXED_USD_PER_MONTH = 50.0
DEMAND_USD_PER_KW_MONTH = 27.0
DR_RESIDENTIAL_USD_PER_KWH = 275.0 / (45 * 3.0)  # $/kW-season ÷ (events × hours)
DR_CI_USD_PER_KWH = 200.0 / (45 * 3.0)
EFFICIENCY = 0.92
DEGRADATION_USD_PER_KWH = 0.03

SINGLE_SITE_REPEATS = 20
PROGRAM_REPEATS = 3
GOALS_S = {"home, 1 EV": 0.010, "business, 10 EVs": 0.050, "program, 100 sites": 2.0}
GOAL_SPEEDUP = 10.0


@dataclass(frozen=True)
class EVModel:
    """Nameplate data of a vehicle on its EVSE (kW limits are min of vehicle and EVSE)."""

    battery_kwh: float
    charge_kw: float
    discharge_kw: float
    kwh_per_mile: float


F150_LIGHTNING_ER = EVModel(131.0, 19.2, 9.6, 0.50)
KIA_EV9_100 = EVModel(99.8, 11.5, 11.5, 0.42)
KIA_EV9_76 = EVModel(76.1, 11.5, 11.5, 0.40)
BOLT_CHARGE_ONLY = EVModel(65.0, 11.0, 0.0, 0.30)  # non-V2X
JOULEY_BUS_226 = EVModel(226.0, 60.0, 60.0, 1.21)


@dataclass(frozen=True)
class Trip:
    depart_h: float
    return_h: float
    miles: float


def ev_inputs(
    vehicle_id: str,
    model: EVModel,
    trips: list[Trip],
    initial_soc: float,
    reserve_soc: float,
    terminal_value_usd_per_kwh: float,
    soc_min: float = 0.05,
    departure_floor_soc: float = 0.2,
) -> VehicleInputs:
    """One vehicle's LP inputs: plugged unless on a trip, trip energy spread evenly over
    the trip, floor = max(soc_min·B, reserve·B while plugged, departure need)."""
    away = np.zeros(N_STEPS, dtype=bool)
    trip_kwh = np.zeros(N_STEPS)
    departure_need_kwh = np.zeros(N_STEPS)
    for trip in trips:
        window = (trip.depart_h <= HOUR_H) & (trip.return_h > HOUR_H)
        energy_kwh = trip.miles * model.kwh_per_mile
        away |= window
        trip_kwh[window] += energy_kwh / window.sum()
        leaves = int(np.argmax(window)) - 1
        if leaves >= 0:
            departure_need_kwh[leaves] = min(
                energy_kwh + departure_floor_soc * model.battery_kwh, model.battery_kwh
            )
    plugged = ~away
    floor_kwh = np.maximum.reduce(
        [
            np.full(N_STEPS, soc_min * model.battery_kwh),
            np.where(plugged, reserve_soc * model.battery_kwh, 0.0),
            departure_need_kwh,
        ]
    )
    return VehicleInputs(
        vehicle_id=vehicle_id,
        evse_id=f"{vehicle_id}-evse",
        battery_kwh=model.battery_kwh,
        initial_energy_kwh=initial_soc * model.battery_kwh,
        max_energy_kwh=model.battery_kwh,
        floor_kwh=np.minimum(floor_kwh, model.battery_kwh),
        departure_need_kwh=departure_need_kwh,
        plugged=plugged,
        max_charge_kw=np.where(plugged, model.charge_kw, 0.0),
        max_discharge_kw=np.where(plugged, model.discharge_kw, 0.0),
        trip_energy_kwh=trip_kwh,
        charge_efficiency=EFFICIENCY,
        discharge_efficiency=EFFICIENCY,
        degradation_usd_per_kwh=DEGRADATION_USD_PER_KWH,
        terminal_value_usd_per_kwh=terminal_value_usd_per_kwh,
    )


def _bump_kw(center_h: float, width_h: float) -> NDArray[np.float64]:
    bump: NDArray[np.float64] = np.exp(-(((HOUR_H - center_h) / width_h) ** 2))
    return bump


def _pv_kw(rng: np.random.Generator, kw_dc: float) -> NDArray[np.float64]:
    """Clear-sky-ish June PV with passing clouds (kW AC)."""
    clear = np.clip(np.sin(np.pi * (HOUR_H - 5.5) / 15.0), 0.0, None)
    pv_kw: NDArray[np.float64] = 0.8 * kw_dc * clear * rng.uniform(0.6, 1.0, N_STEPS)
    return pv_kw


def _site(
    site_id: str,
    load_kw: NDArray[np.float64],
    pv_kw: NDArray[np.float64],
    price_usd_per_kwh: float,
    fixed_usd_per_month: float,
    dr_usd_per_kwh: float,
    vehicles: tuple[VehicleInputs, ...],
    **limits: Any,
) -> SiteInputs:
    return SiteInputs(
        site_id=site_id,
        start=START,
        step_h=STEP_H,
        load_kw=load_kw,
        pv_kw=pv_kw,
        import_price_usd_per_kwh=np.full(N_STEPS, price_usd_per_kwh),
        export_credit_usd_per_kwh=np.zeros(N_STEPS),  # none in Massachusetts today
        dr_value_usd_per_kwh=np.where(DR_EVENT, dr_usd_per_kwh, 0.0),
        billing_period=np.zeros(N_STEPS, dtype=np.int64),
        fixed_charge_usd=fixed_usd_per_month * N_STEPS * STEP_H / 24.0 / DAYS_PER_MONTH,
        shortfall_penalty_usd_per_kwh=100.0,
        vehicles=vehicles,
        **limits,
    )


def home(rng: np.random.Generator, index: int = 0) -> SiteInputs:
    """A home with one EV (an F-150 Lightning for the headline case) on a weekday commute
    07:00–17:00, maybe rooftop PV, no export, enrolled in the residential DR program."""
    model = (
        F150_LIGHTNING_ER
        if index == 0
        else [F150_LIGHTNING_ER, KIA_EV9_100, KIA_EV9_76, BOLT_CHARGE_ONLY][index % 4]
    )
    load_kw = (
        rng.uniform(0.8, 1.4)
        * (0.5 + 0.8 * _bump_kw(7.5, 1.5) + 1.6 * _bump_kw(19.0, 2.5))
        * rng.uniform(0.8, 1.2, N_STEPS)
    )
    ev = ev_inputs(
        f"home{index}-ev",
        model,
        [Trip(7.0, 17.0, rng.uniform(20.0, 60.0))],
        initial_soc=rng.uniform(0.3, 0.8),
        reserve_soc=0.3,
        terminal_value_usd_per_kwh=HOME_PRICE_USD_PER_KWH / EFFICIENCY,
    )
    pv_kw = _pv_kw(rng, rng.choice([0.0, 6.0, 8.0]))
    return _site(
        f"home{index}",
        load_kw,
        pv_kw,
        HOME_PRICE_USD_PER_KWH,
        HOME_FIXED_USD_PER_MONTH,
        DR_RESIDENTIAL_USD_PER_KWH,
        (ev,),
        service_limit_kw=48.0,
        export_permitted=False,
        demand_usd_per_kw_month=0.0,
        peak_so_far_kw=0.0,
    )


def business(rng: np.random.Generator, n_evs: int = 10, index: int = 0) -> SiteInputs:
    """A small office with a fleet of ``n_evs`` cars (some charge-only) out on midday
    errands, rooftop PV, a demand charge, no export, in the C&I daily-dispatch program."""
    load_kw = (25.0 + 60.0 * ((HOUR_H >= 7.5) & (HOUR_H < 18.5))) * rng.uniform(0.85, 1.15, N_STEPS)
    fleet = [KIA_EV9_100, KIA_EV9_76, BOLT_CHARGE_ONLY]
    evs = []
    for i in range(n_evs):
        depart_h = float(rng.choice(np.arange(8.0, 12.0, 0.25)))
        evs.append(
            ev_inputs(
                f"biz{index}-ev{i}",
                fleet[i % 3],
                [Trip(depart_h, depart_h + rng.uniform(2.0, 5.0), rng.uniform(20.0, 80.0))],
                initial_soc=rng.uniform(0.4, 0.8),
                reserve_soc=0.0,
                terminal_value_usd_per_kwh=BUSINESS_PRICE_USD_PER_KWH / EFFICIENCY,
            )
        )
    return _site(
        f"business{index}",
        load_kw,
        _pv_kw(rng, 50.0),
        BUSINESS_PRICE_USD_PER_KWH,
        BUSINESS_FIXED_USD_PER_MONTH,
        DR_CI_USD_PER_KWH,
        tuple(evs),
        service_limit_kw=250.0,
        export_permitted=False,
        demand_usd_per_kw_month=DEMAND_USD_PER_KW_MONTH,
        peak_so_far_kw=rng.uniform(50.0, 90.0),
    )


def school(rng: np.random.Generator, n_buses: int = 4, index: int = 0) -> SiteInputs:
    """A primary school with ``n_buses`` 226 kWh buses on 60 kW bidirectional DC chargers,
    two routes a day (06:30–09:00, 14:00–16:30), export approved, demand charge."""
    load_kw = (40.0 + 140.0 * _bump_kw(11.0, 3.5)) * rng.uniform(0.9, 1.1, N_STEPS)
    buses = tuple(
        ev_inputs(
            f"school{index}-bus{i}",
            JOULEY_BUS_226,
            [Trip(6.5, 9.0, rng.uniform(10.0, 25.0)), Trip(14.0, 16.5, rng.uniform(10.0, 25.0))],
            initial_soc=rng.uniform(0.5, 0.8),
            reserve_soc=0.2,
            terminal_value_usd_per_kwh=BUSINESS_PRICE_USD_PER_KWH / EFFICIENCY,
        )
        for i in range(n_buses)
    )
    return _site(
        f"school{index}",
        load_kw,
        _pv_kw(rng, 80.0),
        BUSINESS_PRICE_USD_PER_KWH,
        BUSINESS_FIXED_USD_PER_MONTH,
        DR_CI_USD_PER_KWH,
        buses,
        service_limit_kw=500.0,
        export_permitted=True,
        demand_usd_per_kw_month=DEMAND_USD_PER_KW_MONTH,
        peak_so_far_kw=rng.uniform(120.0, 170.0),
    )


def program_sites(rng: np.random.Generator) -> list[SiteInputs]:
    """60 homes, 30 businesses with 2–10 EVs, 10 schools with 2–6 buses."""
    return (
        [home(rng, i) for i in range(60)]
        + [business(rng, int(rng.integers(2, 11)), i) for i in range(30)]
        + [school(rng, int(rng.integers(2, 7)), i) for i in range(10)]
    )


def median_s(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls, after one warm-up call."""
    run()
    times_s = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times_s.append(time.perf_counter() - started)
    return statistics.median(times_s)


@dataclass(frozen=True)
class Row:
    case: str
    size: str
    ours_s: float
    reference_s: float
    max_rel_gap: float
    stages_ms: tuple[float, float, float, float]

    @property
    def speedup(self) -> float:
        return self.reference_s / self.ours_s


def measure(case: str, sites: list[SiteInputs], repeats: int, reference: Any) -> Row:
    """Our route and the linopy route on ``sites`` (planned one after the other)."""
    ours_s = median_s(lambda: [plan_site(s) for s in sites], repeats)
    reference_s = median_s(lambda: [reference.solve_with_linopy(s) for s in sites], repeats)
    gaps = []
    for s in sites:
        objective = plan_site(s).objective  # the whole LP: the tie-breaker included
        ours_usd = objective.total_usd + objective.early_charge_usd
        reference_usd = reference.solve_with_linopy(s)
        gaps.append(abs(ours_usd - reference_usd) / max(1.0, abs(reference_usd)))
    lps = [build_model(s) for s in sites]
    size = (
        f"{lps[0].n_cols} × {lps[0].n_rows}"
        if len(sites) == 1
        else f"{sum(lp.n_cols for lp in lps)} × {sum(lp.n_rows for lp in lps)} in all"
    )
    return Row(case, size, ours_s, reference_s, max(gaps), stage_ms(sites, repeats))


def stage_ms(sites: list[SiteInputs], repeats: int) -> tuple[float, float, float, float]:
    """Median ms of build_model, solve (of which HiGHS ``run``), extract_plan, summed over
    ``sites``."""
    lps = [build_model(s) for s in sites]
    solutions = [solve(lp) for lp in lps]
    build = median_s(lambda: [build_model(s) for s in sites], repeats)
    solving = median_s(lambda: [solve(lp) for lp in lps], repeats)
    run = sum(statistics.median(solve(lp).solve_time_s for _ in range(repeats)) for lp in lps)
    extract = median_s(
        lambda: [extract_plan(s, lp, x) for s, lp, x in zip(sites, lps, solutions, strict=True)],
        repeats,
    )
    return (1e3 * build, 1e3 * solving, 1e3 * run, 1e3 * extract)


def machine() -> list[str]:
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"nproc: {len(os.sched_getaffinity(0))} (cpu_count {os.cpu_count()}), CPU: {cpu}",
        f"python {platform.python_version()}, highspy {importlib.metadata.version('highspy')}, "
        f"linopy {importlib.metadata.version('linopy')}, numpy {np.__version__}, "
        f"scipy {importlib.metadata.version('scipy')}",
    ]


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


def print_report(rows: list[Row]) -> None:
    print(
        "| case | LP cols × rows | ours (plan_site) | goal | met | linopy | linopy/ours "
        "| ≥ 10× | max rel. objective gap |"
    )
    print("|---|---|---:|---:|---|---:|---:|---|---:|")
    for r in rows:
        goal_s = GOALS_S.get(r.case)
        goal = f"≤ {_ms(goal_s)}" if goal_s else "—"
        met = ("yes" if r.ours_s <= goal_s else "**no**") if goal_s else "—"
        fast = "yes" if r.speedup >= GOAL_SPEEDUP else "**no**"
        print(
            f"| {r.case} | {r.size} | {_ms(r.ours_s)} | {goal} | {met} | "
            f"{_ms(r.reference_s)} | {r.speedup:.1f}× | {fast} | {r.max_rel_gap:.1e} |"
        )
    print()
    print("Where our time goes (medians, ms): build_model | solve (HiGHS run) | extract_plan")
    print()
    print("| case | build_model | solve | of which HiGHS run | extract_plan |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        build, solving, run, extract = r.stages_ms
        print(f"| {r.case} | {build:.2f} | {solving:.2f} | {run:.2f} | {extract:.2f} |")


def print_profile(inputs: SiteInputs, repeats: int = 200) -> None:
    plan_site(inputs)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        plan_site(inputs)
    profiler.disable()
    print(f"\ncProfile of plan_site on '{inputs.site_id}' × {repeats} (by own time):\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="add a cProfile of plan_site")
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 for the program")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "optimize"))
    reference = importlib.import_module("linopy_reference")
    single = 3 if args.quick else SINGLE_SITE_REPEATS
    whole = 1 if args.quick else PROGRAM_REPEATS

    rng = np.random.default_rng(SEED)
    cases = [
        ("home, 1 EV", [home(rng)], single),
        ("school, 4 buses", [school(rng)], single),
        ("business, 10 EVs", [business(rng)], single),
        ("program, 100 sites", program_sites(rng), whole),
        # Beyond the stated goals: a larger LP, where HiGHS time dominates both routes.
        ("business, 30 EVs (extra)", [business(np.random.default_rng(SEED + 1), 30)], single),
    ]
    print("# Optimizer benchmark: one site-day, 96 × 15 min\n")
    for line in machine():
        print(f"- {line}")
    print(f"- repeats: {single} per single site, {whole} for the program (medians); seed {SEED}\n")
    rows = [measure(case, sites, repeats, reference) for case, sites, repeats in cases]
    print_report(rows)
    if args.profile:
        print_profile(cases[2][1][0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
