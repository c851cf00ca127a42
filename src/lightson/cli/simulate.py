"""Simulation and analysis commands: simulate, compare, resilience, program new."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from lightson.cli.app import finite, friendly_errors, main, parse_start, program_argument
from lightson.config import load_program
from lightson.control.controllers import CONTROLLERS
from lightson.domain.assets import LoadTier, Program, Site
from lightson.domain.errors import ConfigError
from lightson.domain.failures import FIELD_FAILURES, NO_FAILURES


@main.command()
@program_argument()
@click.option(
    "--controller",
    default="v2x-mpc",
    show_default=True,
    type=click.Choice(list(CONTROLLERS)),
    help="How sites decide their setpoints.",
)
@click.option(
    "--start",
    default="2026-07-13T00:00",
    show_default=True,
    help="First simulated instant, ISO 8601 (program-local time if no offset).",
)
@click.option("--end", help="End of the simulation (exclusive); overrides --days.")
@click.option(
    "--days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(min=0.25, max=3660),
    callback=finite,
    help="Length of the simulation in days.",
)
@click.option(
    "--sites",
    "n_sites",
    type=click.IntRange(min=1),
    help="Simulate only the first N sites of the program.",
)
@click.option(
    "--site",
    "only_sites",
    multiple=True,
    help="Simulate only this site (repeat for several); each site's world is the same as in "
    "a run of the whole program.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the simulated world.",
)
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes to run sites in.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Run sites on a local process pool or on Ray (identical results).",
)
@click.option(
    "--ray-address",
    help="Address of a Ray cluster (with --engine ray); default: a local Ray instance.",
)
@click.option(
    "--failures",
    type=click.Choice(["file", "field", "none"]),
    default="file",
    show_default=True,
    help="Charger faults, link losses, opt-outs, late plug-ins, early departures, summer "
    "routes: as the program file says (no 'failures:' section: none), the field defaults "
    "for every site, or none at all (docs/simulation.md).",
)
@click.option(
    "--failures-from-db",
    "failures_db",
    help="Run with the failure rates measured in this operations database (e.g. "
    "sqlite:///lightson.db; 'lightson failure-rates' prints them) for every site, the "
    "field defaults where it recorded nothing to measure.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for interval data (Parquet) and KPIs (JSON, CSV).",
)
@click.option(
    "--forecast",
    "forecaster",
    type=click.Choice(["profile", "recent-days", "learned"]),
    default="profile",
    show_default=True,
    help="The building-load forecaster the controller is given (docs/simulation.md).",
)
@click.option(
    "--availability",
    type=click.Choice(["learned", "schedule"]),
    default="learned",
    show_default=True,
    help="How the controller knows the vehicles' trips: learned from the sessions the twin "
    "recorded before each plan once a vehicle has 10 (as the live loop), or the program "
    "file's schedule (docs/simulation.md).",
)
@click.option(
    "--truth-shift-hours",
    type=float,
    default=0.0,
    show_default=True,
    help="A building of its own: the true load is the profile read this many hours later.",
)
@click.option(
    "--peak-quantile",
    type=click.Choice(["0.5", "0.9"]),
    default="0.5",
    show_default=True,
    help="The load quantile of a learned or recent-days forecast the demand-peak "
    "constraint plans for (energy is costed on the median; docs/formulation.md).",
)
@click.option(
    "--month-peak",
    type=click.Choice(["expected", "so-far"]),
    default="expected",
    show_default=True,
    help="How the controller values the billing month's demand peak: 'expected' plans "
    "on the peak the month is expected to reach anyway (below it import costs no demand "
    "charge), 'so-far' on the peak reached so far (docs/simulation.md, early-month events).",
)
@friendly_errors
def simulate(
    program_file: str,
    controller: str,
    start: str,
    end: str | None,
    days: float,
    n_sites: int | None,
    only_sites: tuple[str, ...],
    seed: int,
    workers: int,
    engine: str,
    ray_address: str | None,
    failures: str,
    failures_db: str | None,
    out: Path,
    forecaster: str,
    availability: str,
    truth_shift_hours: float,
    peak_quantile: str,
    month_peak: str,
) -> None:
    """Simulate sites of a program with a controller on real Boston data, and summarise."""
    from lightson.reports.run_views import run_table
    from lightson.sim.kpis import site_kpis
    from lightson.sim.output import write_run
    from lightson.sim.runner import simulate_program
    from lightson.sim.world import WorldOptions

    program = with_failures(load_program(program_file), failures)
    if failures_db is not None:
        from lightson.cli.failures import field_rates_until_now

        if failures != "file":
            raise ConfigError.at("--failures-from-db", "give either it or --failures, not both")
        model = field_rates_until_now(failures_db, program).model()
        sites = tuple(replace(s, failures=None) for s in program.sites)
        program = replace(program, sites=sites, failures=model)
    first = parse_start(start, program)
    last = parse_start(end, program, "--end") if end else first + timedelta(days=days)
    n_steps = int((last.astimezone(UTC) - first.astimezone(UTC)) / program.step)
    if n_steps <= 0:
        raise ConfigError.at("--end", "must be at least one step after --start")
    site_ids = [s.site_id for s in program.sites][:n_sites]
    if only_sites:
        site_ids = [program.site(s).site_id for s in only_sites]  # an unknown one is named
    with click.progressbar(
        length=len(site_ids), label=f"simulating {len(site_ids)} sites", file=sys.stderr
    ) as bar:
        run = simulate_program(
            program,
            controller,
            first,
            n_steps,
            site_ids,
            seed,
            workers,
            on_site_done=lambda _: bar.update(1),
            engine=engine,
            ray_address=ray_address,
            options=WorldOptions(
                forecaster,
                truth_shift_hours,
                peak_quantile=float(peak_quantile),
                availability=availability,
                month_peak=month_peak,
            ),
        )
    results = [site_kpis(program, r) for r in run.runs]
    kpis = [k for k, _ in results]
    events = [e for _, site_events in results for e in site_events]
    written = write_run(program, run, kpis, events, out)
    click.echo(run_table(kpis, events))
    click.echo(f"\nwritten: {', '.join(str(p) for p in written)}")


def with_failures(program: Program, choice: str) -> Program:
    """The program with ``--failures``: ``file`` as it is, ``field`` or ``none`` for every
    site (site overrides and known charger downtime included)."""
    if choice == "file":
        return program
    model = FIELD_FAILURES if choice == "field" else NO_FAILURES
    sites = tuple(replace(s, failures=None) for s in program.sites)
    downtime = program.charger_downtime if choice == "field" else ()
    return replace(program, sites=sites, failures=model, charger_downtime=downtime)


@main.command()
@program_argument()
@click.option("--site", "site_id", required=True, help="Site id in the program file.")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A 'lightson simulate' output folder to read vehicle energy from; "
    "default: simulate the site now.",
)
@click.option(
    "--controller",
    default="v2x-mpc",
    show_default=True,
    type=click.Choice(list(CONTROLLERS)),
    help="Controller, when simulating.",
)
@click.option(
    "--start",
    default="2026-01-01T00:00",
    show_default=True,
    help="Start of the period, when simulating.",
)
@click.option(
    "--days",
    default=365.0,
    show_default=True,
    type=click.FloatRange(min=4, max=3660),
    callback=finite,
    help="Length of the period, when simulating.",
)
@click.option(
    "--tier",
    type=click.Choice([t.value for t in LoadTier]),
    default="critical",
    show_default=True,
    help="Tier for the hours-by-start figure.",
)
@click.option(
    "--max-hours",
    default=72.0,
    show_default=True,
    type=click.FloatRange(min=1, max=240),
    callback=finite,
    help="Longest outage considered.",
)
@click.option(
    "--reserves",
    default=None,
    help="Comma-separated backup reserves to compare (e.g. 0,0.2,0.4,0.6): simulates the "
    "period once per reserve and writes the trade-off; not with --run.",
)
@click.option(
    "--need-hours",
    default=8.0,
    show_default=True,
    type=click.FloatRange(min=0.25, max=240),
    callback=finite,
    help="Outage length the reserve should carry (with --reserves).",
)
@click.option(
    "--probability",
    default=0.9,
    show_default=True,
    type=click.FloatRange(min=0.0, max=1.0),
    callback=finite,
    help="Share of outage starts it should carry (with --reserves).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the table (CSV) and figures.",
)
@friendly_errors
def resilience(
    program_file: str,
    site_id: str,
    run_dir: Path | None,
    controller: str,
    start: str,
    days: float,
    tier: str,
    max_hours: float,
    reserves: str | None,
    need_hours: float,
    probability: float,
    out: Path,
) -> None:
    """Outage survival at a site: for every hour as an outage start, the hours each load
    tier is carried by the vehicles plugged in then (and PV); the probability of riding
    through 4, 8, 24 and 72 hours; figures of both. With --reserves, the reserve trade-off:
    the survival probability each backup reserve buys and the net cost it adds."""
    from lightson.reports.resilience_views import survival_table, write_survival_figures
    from lightson.resilience.analysis import survival_of_run

    program = load_program(program_file)
    site = program.site(site_id)
    if reserves is not None:
        if run_dir is not None:
            raise ConfigError.at("--reserves", "compares fresh simulations: leave out --run")
        _reserve_tradeoff(
            program,
            site_id,
            controller,
            parse_start(start, program),
            days,
            reserves,
            LoadTier(tier),
            need_hours,
            probability,
            max_hours,
            out,
        )
    if run_dir is None:
        from lightson.sim.runner import simulate_program

        first = parse_start(start, program)
        click.echo(f"simulating {site_id} for {days:g} days with {controller} ...", err=True)
        run = simulate_program(
            program, controller, first, round(timedelta(days=days) / program.step), [site_id]
        ).runs[0]
        arrays = (run.start, run.load_kw, run.pv_kw, run.energy_kwh, run.plugged)
    else:
        arrays = _read_run(run_dir, site)
    run_start, load_kw, pv_kw, energy_end_kwh, plugged = arrays
    if int(load_kw.shape[0]) * program.step.total_seconds() / 3600 < max_hours + 1:
        period_h = int(load_kw.shape[0]) * program.step.total_seconds() / 3600
        raise ConfigError.at("--max-hours", f"must be shorter than the period ({period_h:g} h)")
    result = survival_of_run(
        site,
        run_start,
        program.step,
        program.timezone,
        load_kw,
        pv_kw,
        energy_end_kwh,
        plugged,
        max_hours,
    )
    click.echo(survival_table(result))
    out.mkdir(parents=True, exist_ok=True)
    table = out / "survival.csv"
    columns = {"start_utc": [s.isoformat() for s in result.starts]}
    columns |= {f"{t.value}_hours": [f"{h:.3f}" for h in result.hours[t]] for t in LoadTier}
    table.write_text(
        "\n".join(",".join(row) for row in zip(*([k, *v] for k, v in columns.items()), strict=True))
        + "\n"
    )
    figures = write_survival_figures(result, LoadTier(tier), program.timezone, out)
    click.echo(f"\nwritten: {table}, {', '.join(str(f) for f in figures)}")


def _reserve_tradeoff(
    program: Any,
    site_id: str,
    controller: str,
    first: datetime,
    days: float,
    reserves: str,
    tier: LoadTier,
    need_hours: float,
    probability: float,
    max_hours: float,
    out: Path,
) -> None:
    from lightson.reports.resilience_views import write_reserve_figure
    from lightson.sim.reserve import reserve_tradeoff, smallest_reserve

    try:
        levels = sorted({float(part) for part in reserves.split(",") if part.strip()})
    except ValueError:
        raise ConfigError.at("--reserves", "must be numbers like 0,0.2,0.4") from None
    if not levels or any(not 0.0 <= r < 1.0 for r in levels):
        raise ConfigError.at("--reserves", "each reserve is a state of charge in [0, 1)")
    if need_hours > max_hours:
        raise ConfigError.at("--need-hours", "must not exceed --max-hours")
    n_steps = round(timedelta(days=days) / program.step)
    click.echo(f"simulating {site_id} for {days:g} days at {len(levels)} reserves ...", err=True)
    points = reserve_tradeoff(
        program, site_id, controller, first, n_steps, levels, tier, need_hours, max_hours
    )
    base_cost = points[0].net_cost_usd
    click.echo(f"reserve   carried {need_hours:g} h ({tier.value})   median h   extra net cost $")
    for p in points:
        click.echo(
            f"{p.reserve_soc:>6.0%}   {p.survival_probability:>22.0%}   {p.median_hours:>8.1f}"
            f"   {p.net_cost_usd - base_cost:>16.2f}"
        )
    chosen = smallest_reserve(points, probability)
    if chosen is None:
        click.echo(f"no reserve tried carries {need_hours:g} h in {probability:.0%} of starts")
    else:
        click.echo(
            f"smallest reserve carrying {need_hours:g} h in {probability:.0%} of starts: "
            f"{chosen.reserve_soc:.0%} (costs {chosen.net_cost_usd - base_cost:.2f} $ more "
            f"over the period)"
        )
    out.mkdir(parents=True, exist_ok=True)
    rows = ["reserve_soc,survival_probability,median_hours,net_cost_usd,dr_payment_usd,bill_usd"]
    rows += [
        f"{p.reserve_soc},{p.survival_probability:.4f},{p.median_hours:.3f},"
        f"{p.net_cost_usd:.2f},{p.dr_payment_usd:.2f},{p.bill_usd:.2f}"
        for p in points
    ]
    (out / "reserve.csv").write_text("\n".join(rows) + "\n")
    figure = write_reserve_figure(
        site_id,
        [p.reserve_soc for p in points],
        [p.survival_probability for p in points],
        [p.net_cost_usd - base_cost for p in points],
        need_hours,
        tier,
        probability,
        out,
    )
    click.echo(f"written: {out / 'reserve.csv'}, {figure}\n")


def _read_run(run_dir: Path, site: Site) -> tuple[datetime, Any, Any, Any, Any]:
    import pandas as pd

    try:
        sites = pd.read_parquet(run_dir / "sites.parquet")
        vehicles = pd.read_parquet(run_dir / "vehicles.parquet")
    except (OSError, ValueError) as error:
        raise ConfigError.at("--run", f"not a simulation output folder ({error})") from None
    rows = sites[sites.site_id == site.site_id].sort_values("time_utc")
    if rows.empty:
        raise ConfigError.at("--run", f"no data for site '{site.site_id}' in {run_dir}")
    mine = vehicles[vehicles.site_id == site.site_id]
    missing = sorted({v.vehicle_id for v in site.vehicles} - set(mine.vehicle_id))
    if missing:
        raise ConfigError.at(
            "--run", f"no data for vehicles {', '.join(missing)}: another program?"
        )
    energy = np.array(
        [
            mine[mine.vehicle_id == v.vehicle_id].sort_values("time_utc").energy_kwh.to_numpy()
            for v in site.vehicles
        ]
    ).reshape(len(site.vehicles), len(rows))
    plugged = np.array(
        [
            mine[mine.vehicle_id == v.vehicle_id].sort_values("time_utc").plugged.to_numpy()
            for v in site.vehicles
        ],
        dtype=bool,
    ).reshape(len(site.vehicles), len(rows))
    start = rows.time_utc.iloc[0].to_pydatetime()
    return start, rows.load_kw.to_numpy(float), rows.pv_kw.to_numpy(float), energy, plugged


@main.command()
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    metavar="RUN_DIR...",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@friendly_errors
def compare(run_dirs: tuple[Path, ...]) -> None:
    """Compare 'lightson simulate' runs of the same world with different controllers: costs
    against unmanaged and the value v2x-mpc captures of perfect foresight."""
    from lightson.reports.compare import check_comparable, compare_table

    documents = []
    for run_dir in run_dirs:
        try:
            documents.append(json.loads((run_dir / "kpis.json").read_text()))
        except (OSError, ValueError) as error:
            raise ConfigError.at(
                str(run_dir), f"not a simulation output folder ({error})"
            ) from None
    problems = check_comparable(documents)
    if problems:
        raise ConfigError([("RUN_DIR", p) for p in problems])
    click.echo(compare_table(documents))


@main.group()
def program() -> None:
    """Program files: generate one shaped like a real program."""


@program.command("new")
@click.argument("template", type=click.Choice(["ma-2026"]))
@click.option(
    "--seed",
    default=2026,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the generated sites.",
)
@click.option(
    "--reference-year",
    default=2024,
    show_default=True,
    type=click.IntRange(2020, 2024),
    help="Year of Boston-zone load the ConnectedSolutions event days are chosen from.",
)
@friendly_errors
def program_new(template: str, seed: int, reference_year: int) -> None:
    """Write a program file to stdout: ma-2026 is the Massachusetts V2X Demonstration Program
    (55 homes, 4 commercial or municipal sites, 3 school depots, the 2026 event season)."""
    from lightson.config.generate import ma_2026_program, program_yaml

    document = ma_2026_program(seed=seed, reference_year=reference_year)
    header = (
        f"lightson program new {template} --seed {seed} --reference-year {reference_year}\n"
        "Generated; plain configuration: edit or replace any site (docs/program-file.md)."
    )
    click.echo(program_yaml(document, header), nl=False)
