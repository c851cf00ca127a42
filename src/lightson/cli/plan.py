"""Planning commands: plan, demo, validate, catalog."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from lightson.cli.app import DEMO_DAY, FIGURE_SUFFIXES, finite, friendly_errors, main, parse_start
from lightson.config import EXAMPLE_PROGRAM, load_program
from lightson.datasets import LOAD_PROFILES
from lightson.domain.assets import Program, Site
from lightson.domain.catalog import CHARGER_MODELS, DR_PROGRAMS, TARIFFS, VEHICLE_MODELS
from lightson.domain.errors import ConfigError
from lightson.domain.plan import Plan
from lightson.domain.state import SiteState
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast, profile_peak_so_far_kw
from lightson.optimize import SiteInputs, build_site_inputs, plan_site
from lightson.reports.plan_views import plan_document, plan_table


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
    callback=finite,
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
    callback=finite,
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
@friendly_errors
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
    first = parse_start(start, program)
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
@friendly_errors
def tour(out: Path) -> None:
    """An offline tour, no server: plan every site of the bundled example program through a
    ConnectedSolutions event day (2026-07-15), write a figure and a JSON document per site,
    then simulate three days around it with unmanaged charging and with v2x-mpc."""
    from lightson.reports.plan_figure import write_plan_figure

    program = load_program(EXAMPLE_PROGRAM)
    start = parse_start(DEMO_DAY, program)
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
@click.argument("program_file", metavar="PROGRAM")
@friendly_errors
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
