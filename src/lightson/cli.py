"""The ``lightson`` command: wiring only. Every subcommand turns ``LightsOnError`` into a
one-line message on stderr and exit status 2 (never a traceback)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from lightson.config import EXAMPLE_PROGRAM, load_program
from lightson.control.controllers import CONTROLLERS
from lightson.datasets import LOAD_PROFILES
from lightson.domain.assets import LoadTier, Program, Site
from lightson.domain.catalog import CHARGER_MODELS, DR_PROGRAMS, TARIFFS, VEHICLE_MODELS
from lightson.domain.errors import ConfigError, LightsOnError
from lightson.domain.plan import Plan
from lightson.domain.state import SiteState
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast, profile_peak_so_far_kw
from lightson.optimize import SiteInputs, build_site_inputs, plan_site
from lightson.physics.trips import trip_schedule
from lightson.reports.plan_views import plan_document, plan_table

F = TypeVar("F", bound=Callable[..., Any])
DEMO_DAY = "2026-07-15T00:00"
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def _finite(_: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number", param=param)
    return value


def _friendly_errors(command: F) -> F:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LightsOnError as error:
            click.echo(f"error: {error}".replace("\n", "\nerror: "), err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="lightson")
def main() -> None:
    """Lights On: plan, run and study vehicle-to-everything (V2X) programs.

    PROGRAM arguments take a program file (YAML, see docs/program-file.md) or a bundled
    program: 'example', 'beverly-2021' or 'ma-2026'.
    """


@main.command()
@click.argument("program_file", metavar="PROGRAM")
@click.option("--site", "site_id", required=True, help="Site id in the program file.")
@click.option(
    "--start",
    default=DEMO_DAY,
    show_default=True,
    help="First interval, ISO 8601; program-local time if no offset is given.",
)
@click.option(
    "--hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0.25, max=24 * 366),
    callback=_finite,
    help="Horizon length in hours (up to a year).",
)
@click.option(
    "--soc",
    "socs",
    multiple=True,
    metavar="VEHICLE=FRACTION",
    help="Measured SoC (0-1) of a vehicle at the start; repeat per vehicle.",
)
@click.option(
    "--peak-so-far-kw",
    type=click.FloatRange(min=0, max=1e6),
    callback=_finite,
    help="Highest import already reached this billing month "
    "[default: the building's profile peak since the 1st of the month].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write the inputs the LP saw and the plan as one JSON document on stdout.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a figure of the plan (PNG, SVG or PDF by suffix).",
)
@_friendly_errors
def plan(
    program_file: str,
    site_id: str,
    start: str,
    hours: float,
    socs: tuple[str, ...],
    peak_so_far_kw: float | None,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Plan one site over a horizon and show the plan with its objective terms.

    Exits with status 1 when no optimal plan was found (the table says why)."""
    if plot is not None and plot.suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError.at("--plot", f"must end in one of {', '.join(FIGURE_SUFFIXES)}")
    program = load_program(program_file)
    site = program.site(site_id)
    first = _parse_start(start, program)
    if peak_so_far_kw is None:
        peak_so_far_kw = profile_peak_so_far_kw(program, site, first)
    state = SiteState(energy_kwh=_parse_socs(site, socs), peak_so_far_kw=peak_so_far_kw)
    inputs, result = _plan(program, site, first, hours, state)
    if as_json:
        click.echo(json.dumps(plan_document(inputs, result, program.timezone), indent=1))
    else:
        click.echo(plan_table(inputs, result, program.timezone))
    if plot is not None:
        from lightson.reports.plan_figure import write_plan_figure

        written = write_plan_figure(inputs, result, program.timezone, plot)
        click.echo(f"figure written to {written}", err=as_json)
    if not result.status.has_plan:
        click.echo(f"error: no optimal plan: the solver ended {result.status.value}", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the figures and JSON documents.",
)
@_friendly_errors
def demo(out: Path) -> None:
    """Plan every site of the bundled example program through a ConnectedSolutions event
    day (2026-07-15), write a figure and a JSON document per site, then simulate three days
    around it with unmanaged charging and with v2x-mpc."""
    from lightson.reports.plan_figure import write_plan_figure

    program = load_program(EXAMPLE_PROGRAM)
    start = _parse_start(DEMO_DAY, program)
    click.echo(f"{program.name}: {len(program.sites)} sites, event day {start:%Y-%m-%d}\n")
    out.mkdir(parents=True, exist_ok=True)
    for site in program.sites:
        state = SiteState(peak_so_far_kw=profile_peak_so_far_kw(program, site, start))
        inputs, result = _plan(program, site, start, 24.0, state)
        click.echo(plan_table(inputs, result, program.timezone))
        figure = write_plan_figure(inputs, result, program.timezone, out / f"{site.site_id}.png")
        document = out / f"{site.site_id}.json"
        document.write_text(json.dumps(plan_document(inputs, result, program.timezone), indent=1))
        click.echo(f"\nfigure: {figure}   inputs+plan: {document}\n{'=' * 100}\n")
    _demo_simulation(program, start)


def _demo_simulation(program: Program, event_day: datetime) -> None:
    """Three simulated days around the event, unmanaged against v2x-mpc."""
    from lightson.sim.kpis import site_kpis
    from lightson.sim.runner import simulate_program

    start, days = event_day - timedelta(days=1), 3
    click.echo(
        f"Simulating {days} days from {start:%Y-%m-%d} in a noisy world "
        "(docs/simulation.md): unmanaged charging against v2x-mpc\n"
    )
    click.echo(f"{'site':<22}{'unmanaged $':>12}{'v2x-mpc $':>11}{'saved $':>9}{'event kW':>10}")
    ids = [s.site_id for s in program.sites]
    runs = {
        c: simulate_program(program, c, start, days * 96, ids).runs
        for c in ("unmanaged", "v2x-mpc")
    }
    outages = []
    for plain, managed in zip(runs["unmanaged"], runs["v2x-mpc"], strict=True):
        before, _ = site_kpis(program, plain)
        after, _ = site_kpis(program, managed)
        click.echo(
            f"{after.site_id:<22}{before.net_cost_usd:>12.2f}{after.net_cost_usd:>11.2f}"
            f"{before.net_cost_usd - after.net_cost_usd:>9.2f}{after.dr_average_kw:>10.1f}"
        )
        if after.outage_hours:
            outages.append(
                f"{after.site_id} was islanded {after.outage_hours:g} h by a storm: critical load "
                f"unserved {before.critical_unserved_kwh:.0f} kWh with unmanaged charging, "
                f"{after.critical_unserved_kwh:.0f} kWh with v2x-mpc."
                + (
                    " Energy given to demand response was missing in the blackout: the reserve "
                    "(reserve_soc) sets that trade-off."
                    if after.critical_unserved_kwh > before.critical_unserved_kwh + 1e-6
                    else ""
                )
            )
    for line in outages:
        click.echo("\n" + line)
    click.echo(
        "\nNet cost = bill (energy, demand charge on the month's peak prorated to the days run, "
        "fixed) + battery wear "
        "- ConnectedSolutions payment for these events - the value of energy left in the "
        "batteries beyond the start."
    )


@main.command()
@click.option(
    "--program",
    "program_file",
    default=EXAMPLE_PROGRAM,
    show_default=True,
    help="Program file, or example, beverly-2021, ma-2026.",
)
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
    callback=_finite,
    help="Length of the simulation in days.",
)
@click.option(
    "--sites",
    "n_sites",
    type=click.IntRange(min=1),
    help="Simulate only the first N sites of the program.",
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
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for interval data (Parquet) and KPIs (JSON, CSV).",
)
@_friendly_errors
def simulate(
    program_file: str,
    controller: str,
    start: str,
    end: str | None,
    days: float,
    n_sites: int | None,
    seed: int,
    workers: int,
    engine: str,
    ray_address: str | None,
    out: Path,
) -> None:
    """Simulate sites of a program with a controller on real Boston data, and summarise."""
    from lightson.reports.run_views import run_table
    from lightson.sim.kpis import site_kpis
    from lightson.sim.output import write_run
    from lightson.sim.runner import simulate_program

    program = load_program(program_file)
    first = _parse_start(start, program)
    last = _parse_start(end, program, "--end") if end else first + timedelta(days=days)
    n_steps = int((last.astimezone(UTC) - first.astimezone(UTC)) / program.step)
    if n_steps <= 0:
        raise ConfigError.at("--end", "must be at least one step after --start")
    site_ids = [s.site_id for s in program.sites][:n_sites]
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
        )
    results = [site_kpis(program, r) for r in run.runs]
    kpis = [k for k, _ in results]
    events = [e for _, site_events in results for e in site_events]
    written = write_run(program, run, kpis, events, out)
    click.echo(run_table(kpis, events))
    click.echo(f"\nwritten: {', '.join(str(p) for p in written)}")


@main.command()
@click.option(
    "--program",
    "program_file",
    default=EXAMPLE_PROGRAM,
    show_default=True,
    help="Program file, or example, beverly-2021, ma-2026.",
)
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
    callback=_finite,
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
    callback=_finite,
    help="Longest outage considered.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the table (CSV) and figures.",
)
@_friendly_errors
def resilience(
    program_file: str,
    site_id: str,
    run_dir: Path | None,
    controller: str,
    start: str,
    days: float,
    tier: str,
    max_hours: float,
    out: Path,
) -> None:
    """Outage survival at a site: for every hour as an outage start, the hours each load
    tier is carried by the vehicles plugged in then (and PV); the probability of riding
    through 4, 8, 24 and 72 hours; figures of both."""
    from lightson.reports.resilience_views import survival_table, write_survival_figures
    from lightson.resilience.analysis import outage_survival

    program = load_program(program_file)
    site = program.site(site_id)
    if run_dir is None:
        from lightson.sim.runner import simulate_program

        first = _parse_start(start, program)
        click.echo(f"simulating {site_id} for {days:g} days with {controller} ...", err=True)
        run = simulate_program(
            program, controller, first, round(timedelta(days=days) / program.step), [site_id]
        ).runs[0]
        arrays = (run.start, run.load_kw, run.pv_kw, run.energy_kwh, run.plugged)
    else:
        arrays = _read_run(run_dir, site)
    run_start, load_kw, pv_kw, energy_end_kwh, plugged = arrays
    grid = TimeGrid(run_start, int(load_kw.shape[0]), program.step)
    if grid.n_steps * grid.step_h < max_hours + 1:
        raise ConfigError.at(
            "--max-hours", f"must be shorter than the period ({grid.n_steps * grid.step_h:g} h)"
        )
    n_vehicles = len(site.vehicles)
    next_trip = np.array(
        [trip_schedule(v.trips, grid, program.timezone).next_trip_kwh for v in site.vehicles]
    ).reshape(n_vehicles, grid.n_steps)
    initial = np.array([v.initial_soc * v.battery_kwh for v in site.vehicles]).reshape(-1, 1)
    energy_end_kwh = np.asarray(energy_end_kwh, dtype=float).reshape(n_vehicles, grid.n_steps)
    energy_start = np.concatenate([initial, energy_end_kwh[:, :-1]], axis=1)
    plugged = np.asarray(plugged, dtype=bool).reshape(n_vehicles, grid.n_steps)
    result = outage_survival(
        site,
        grid.start,
        program.step,
        load_kw,
        pv_kw,
        energy_start,
        plugged,
        next_trip,
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
@_friendly_errors
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
@_friendly_errors
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


@main.command()
@click.argument("program_file", metavar="PROGRAM")
@_friendly_errors
def validate(program_file: str) -> None:
    """Check a program file and summarise it; every problem is named by its field path."""
    program = load_program(program_file)
    click.echo(f"{program.name}: valid")
    for site in program.sites:
        click.echo(
            f"  {site.site_id:<22} {site.kind.value:<9} {len(site.chargers)} chargers, "
            f"{len(site.vehicles)} vehicles, tariff {site.tariff.tariff_id}"
        )


@main.command()
def catalog() -> None:
    """List the catalog models, tariffs, demand-response programs and load profiles."""
    click.echo("Vehicle models (battery kWh, charge/discharge kW, V2X):")
    for name, v in VEHICLE_MODELS.items():
        click.echo(
            f"  {name:<26}{v.battery_kwh:>7.1f}{v.max_charge_kw:>7.1f}{v.max_discharge_kw:>7.1f}"
            f"  {'yes' if v.v2x_capable else 'no'}"
        )
    click.echo("Charger models (AC/DC, charge/discharge kW, protocol):")
    for name, c in CHARGER_MODELS.items():
        click.echo(
            f"  {name:<26}{c.power_kind.value:>4}{c.max_charge_kw:>7.1f}{c.max_discharge_kw:>7.1f}"
            f"  {c.protocol.value}"
        )
    click.echo("Tariffs ($/kWh, $/month, $/kW-month demand):")
    for name, t in TARIFFS.items():
        click.echo(
            f"  {name:<32}{t.energy_usd_per_kwh:>6.3f}{t.fixed_usd_per_month:>7.1f}"
            f"{t.demand_usd_per_kw_month:>7.1f}"
        )
    click.echo("Demand-response programs ($/kW-season, expected events x hours):")
    for name, d in DR_PROGRAMS.items():
        click.echo(
            f"  {name:<26}{d.rate_usd_per_kw_season:>7.0f}"
            f"  {d.expected_events} x {d.expected_event_hours:g} h"
        )
    click.echo("Load profiles: " + ", ".join(LOAD_PROFILES))


def _plan(
    program: Program, site: Site, start: datetime, hours: float, state: SiteState
) -> tuple[SiteInputs, Plan]:
    steps = round(timedelta(hours=hours) / program.step)
    grid = TimeGrid(start, max(steps, 1), program.step)
    inputs = build_site_inputs(program, site, grid, profile_forecast(program, site, grid), state)
    return inputs, plan_site(inputs)


def _parse_start(text: str, program: Program, option: str = "--start") -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError.at(option, "must be a date and time like 2026-07-15T00:00") from None
    if not 1901 <= value.year <= 2199:
        raise ConfigError.at(option, "must be a year between 1901 and 2199")
    return value if value.tzinfo else value.replace(tzinfo=program.timezone)


def _parse_socs(site: Site, socs: tuple[str, ...]) -> dict[str, float]:
    energy = {}
    known = {v.vehicle_id: v for v in site.vehicles}
    for item in socs:
        name, _, fraction = item.partition("=")
        if name not in known:
            raise ConfigError.at(
                "--soc", f"unknown vehicle '{name}' at {site.site_id}; known: {', '.join(known)}"
            )
        try:
            soc = float(fraction)
        except ValueError:
            raise ConfigError.at("--soc", f"'{item}' must look like VEHICLE=0.6") from None
        if not 0.0 <= soc <= 1.0:
            raise ConfigError.at("--soc", f"{name}: must be between 0 and 1")
        energy[name] = soc * known[name].battery_kwh
    return energy


if __name__ == "__main__":
    main()
