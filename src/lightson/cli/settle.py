"""``lightson settle``: the demand-response settlement of a simulated or a metered season."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

from lightson.cli.app import friendly_errors, main, program_argument
from lightson.config import load_program
from lightson.config.dr_rules import bundled_dr_rules, load_dr_rules
from lightson.domain.assets import Program, SiteKind
from lightson.domain.demand_response import DREvent
from lightson.domain.errors import ConfigError
from lightson.programs import CalledEvent, EventLine, SettlementLine
from lightson.programs.rules import ProgramRules
from lightson.services.events import EventService
from lightson.services.settlement import called_events, metered_from_store, settle_program
from lightson.sim.kpis import event_meters
from lightson.store import Store


@main.command("settle")
@program_argument()
@click.option(
    "--run",
    "run_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A 'lightson simulate' output folder.",
)
@click.option(
    "--db",
    default=None,
    help="Instead of --run: the operations database (what the chargers metered, the events "
    "utilities sent), e.g. sqlite:///lightson.db.",
)
@click.option(
    "--season",
    "season_year",
    type=click.IntRange(1901, 2199),
    default=None,
    help="Settle only this season year (default: every season the run covers; winter 2026 "
    "is December 2026 to March 2027).",
)
@click.option(
    "--rules",
    "rule_files",
    multiple=True,
    help="A rule file (YAML) for a program the bundled files don't cover; repeatable.",
)
@click.option(
    "--participant-share",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of each payment that goes to the site owner (the rest: aggregator).",
)
@click.option(
    "--baseline",
    default=None,
    help="With --run: also measure each business and school event against this customer "
    "baseline (site-level, as C&I programs do), e.g. highest-5-of-10; written to "
    "settlement_baseline.csv next to the storage-rule figures that are paid.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for settlement.csv and settlement_events.csv.",
)
@friendly_errors
def settle_command(
    program_file: str,
    run_dir: Path | None,
    db: str | None,
    season_year: int | None,
    rule_files: tuple[str, ...],
    participant_share: float,
    baseline: str | None,
    out: Path,
) -> None:
    """Settle each demand-response program's season from a run: event kW per site (net
    discharge of the V2X equipment, capped by building load without export permission),
    season-average kW (a missed event counts 0), payment, weekend bonus and the
    participant/aggregator split, line by line.

    Only events the run covers are settled; the table says how many it does not. With --db,
    the events that have ended in the database's event book are settled from the meter values
    the chargers sent (docs/demand-response.md).
    """
    import pandas as pd

    program = load_program(program_file)
    if (run_dir is None) == (db is None):
        raise ConfigError.at("--run", "give either --run DIR or --db URL")
    if baseline is not None:
        from lightson.programs.baselines import BASELINES

        BASELINES.lookup(baseline, "--baseline")  # an unknown name fails before any work
        if db is not None:
            raise ConfigError.at("--baseline", "needs --run (the site's own load over time)")
    if db is not None:
        lines, event_lines, uncovered = _from_database(
            program, db, rule_files, participant_share, season_year
        )
        _write(out, lines, event_lines, uncovered)
        return
    assert run_dir is not None
    try:
        sites_frame = pd.read_parquet(run_dir / "sites.parquet")
    except (OSError, ValueError) as error:
        raise ConfigError.at("--run", f"not a simulation output folder ({error})") from None
    rules = _rules(program.events, rule_files)
    per_site = {
        site_id: rows.sort_values("time_utc") for site_id, rows in sites_frame.groupby("site_id")
    }
    missing = sorted({s.site_id for s in program.sites} - set(per_site))
    if missing:
        raise ConfigError.at("--run", f"no data for sites {', '.join(missing)}: another program?")
    first_rows = next(iter(per_site.values()))
    start = first_rows.time_utc.iloc[0].to_pydatetime()
    step = (
        first_rows.time_utc.iloc[1] - first_rows.time_utc.iloc[0]
        if len(first_rows) > 1
        else pd.Timedelta(program.step)
    )

    metered = {}
    covered: set[str] = set()
    for site in program.sites:
        rows = per_site[site.site_id]
        meters = event_meters(
            [e for e in program.events if e.program_id in site.enrollments],
            start,
            timedelta(seconds=step.total_seconds()),
            rows.vehicles_kw.to_numpy(float),
            rows.load_kw.to_numpy(float),
            rows.in_outage.to_numpy(bool),
        )
        covered |= set(meters)
        metered.update({(site.site_id, event_id): m for event_id, m in meters.items()})
    uncovered = sum(e.event_id not in covered for e in program.events if e.program_id in rules)
    called = [
        CalledEvent(
            e.event_id,
            e.program_id,
            e.start.astimezone(program.timezone),
            e.end.astimezone(program.timezone),
        )
        for e in program.events
        if e.event_id in covered
    ]
    run_end = start + timedelta(seconds=step.total_seconds()) * len(first_rows)
    lines, event_lines = settle_program(
        program, rules, called, metered, participant_share, season_year, (start, run_end)
    )
    _write(out, lines, event_lines, uncovered)
    if baseline is not None:
        table = baseline_table(program, per_site, called, event_lines, baseline)
        table.to_csv(out / "settlement_baseline.csv", index=False)
        click.echo(f"wrote {out / 'settlement_baseline.csv'} ({baseline})")


def baseline_table(
    program: Program,
    per_site: dict[str, Any],
    called: list[CalledEvent],
    event_lines: list[EventLine],
    name: str,
) -> Any:
    """Site-level performance of every business and school in every event it was called to:
    the site's net import against the customer baseline ``name`` (the mean over the event of
    baseline minus actual, at least 0), next to the storage-rule kW that settlement pays."""
    import numpy as np
    import pandas as pd

    from lightson.programs.baselines import BASELINES, performance_kw

    method = BASELINES.lookup(name, "--baseline")()
    credited = {(e.site_id, e.event_id): e.credited_kw for e in event_lines}
    rows = []
    for site in program.sites:
        if site.kind is SiteKind.HOME or site.site_id not in per_site:
            continue
        frame = per_site[site.site_id]
        local = pd.DatetimeIndex(frame.time_utc).tz_convert(program.timezone)
        step = program.step
        per_day = int(timedelta(days=1) / step)
        days: dict[date, Any] = {}
        for day, rows_of_day in frame.groupby(local.date):
            net = rows_of_day.net_kw.to_numpy(float)
            if len(net) == per_day:  # a whole day (not a daylight-saving change or an edge)
                days[day] = net
        mine = [e for e in called if e.program_id in site.enrollments and e.calls(site.site_id)]
        event_days = {e.start.astimezone(program.timezone).date() for e in mine}
        for event in mine:
            start = event.start.astimezone(program.timezone)
            day = start.date()
            first = int((start - start.replace(hour=0, minute=0)) / step)
            window = slice(first, first + max(1, round((event.end - event.start) / step)))
            before = first - int(timedelta(hours=4) / step)
            after = first - int(timedelta(hours=1) / step)
            # The 3 hours ending 1 hour before the event; none before an early-morning event.
            adjustment = slice(before, after) if before >= 0 and after > before else None
            row: dict[str, Any] = {
                "site_id": site.site_id,
                "program_id": event.program_id,
                "event_id": event.event_id,
                "storage_rule_kw": credited.get((site.site_id, event.event_id)),
            }
            if day not in days:
                rows.append({**row, "note": "the event day is not whole in the run"})
                continue
            try:
                base = method.baseline_kw(days, day, event_days, window, adjustment)
            except ValueError as error:
                rows.append({**row, "note": str(error)})
                continue
            eligible = len(method.eligible_days(days, day, event_days))
            note = (
                f"only {eligible} eligible days before the event (the method takes the "
                f"{method.x} highest of {method.y})"
                if eligible < method.x
                else ""
            )
            rows.append(
                {
                    **row,
                    "baseline_kw": float(np.mean(base[window])),
                    "actual_kw": float(np.mean(days[day][window])),
                    "site_performance_kw": performance_kw(base, days[day], window),
                    "note": note,
                }
            )
    columns = [
        "site_id",
        "program_id",
        "event_id",
        "baseline_kw",
        "actual_kw",
        "site_performance_kw",
        "storage_rule_kw",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


def _from_database(
    program: Program,
    url: str,
    rule_files: tuple[str, ...],
    participant_share: float,
    season_year: int | None,
) -> tuple[list[SettlementLine], list[EventLine], int]:
    from lightson.csms.clock import AcceleratedClock

    store = Store(url)
    try:
        clock = AcceleratedClock()
        book = EventService(store, clock).book()
        called = called_events(book.events.values(), clock.now())
        given = tuple(load_dr_rules(path) for path in rule_files)
        rules = {r.program_id: r for r in (*bundled_dr_rules().values(), *given)}
        rules = {k: v for k, v in rules.items() if any(e.program_id == k for e in called)}
        metered = metered_from_store(store, program, called)
    finally:
        store.close()
    lines, event_lines = settle_program(
        program, rules, called, metered, participant_share, season_year, (None, clock.now())
    )
    return lines, event_lines, 0


def _write(
    out: Path, lines: list[SettlementLine], event_lines: list[EventLine], uncovered: int
) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([line.as_dict() for line in lines]).to_csv(out / "settlement.csv", index=False)
    pd.DataFrame([vars(e) for e in event_lines]).to_csv(out / "settlement_events.csv", index=False)
    _print(lines, uncovered)
    click.echo(f"wrote {out / 'settlement.csv'} and {out / 'settlement_events.csv'}")


def _rules(
    events: tuple[DREvent, ...] | list[DREvent], rule_files: tuple[str, ...]
) -> dict[str, ProgramRules]:
    given = {r.program_id: r for r in (load_dr_rules(path) for path in rule_files)}
    bundled = bundled_dr_rules()
    needed = sorted({e.program_id for e in events})
    rules = {}
    for program_id in needed:
        found = given.get(program_id, bundled.get(program_id))
        if found is None:
            raise ConfigError.at(
                "--rules",
                f"no rule file for program '{program_id}': pass --rules FILE "
                f"(bundled: {', '.join(sorted(bundled))})",
            )
        rules[program_id] = found
    return rules


def _print(lines: list[SettlementLine], uncovered: int) -> None:
    """The table; a season the data covers in part is marked and its projection (``season
    $``) shown beside the settled events' own share of it (``these events $``)."""
    header = (
        f"{'site':<22} {'program':<24} {'season':<14} {'events':>6} {'avg kW':>8} "
        f"{'payment $':>10} {'bonus $':>8} {'season $':>10} {'these events $':>14} "
        f"{'owner $':>10} {'aggregator $':>12}"
    )
    click.echo(header)
    totals: dict[str, float] = defaultdict(float)
    for line in lines:
        mark = "*" if line.extrapolated else ""
        events = f"{line.events_called}/{line.season_events}" if line.extrapolated else ""
        click.echo(
            f"{line.site_id:<22} {line.program_id:<24} {line.season + mark:<14} "
            f"{events or line.events_called:>6} {line.season_average_kw:>8.2f} "
            f"{line.payment_usd:>10.2f} {line.weekend_bonus_usd:>8.2f} {line.total_usd:>10.2f} "
            f"{line.events_payment_usd:>14.2f} {line.participant_usd:>10.2f} "
            f"{line.aggregator_usd:>12.2f}"
        )
        totals["total"] += line.total_usd
        totals["events"] += line.events_payment_usd
    extrapolated = [line for line in lines if line.extrapolated]
    click.echo(
        f"program total: {totals['total']:.2f} $ over {len(lines)} site-seasons"
        + (" (extrapolated)" if extrapolated else "")
        + f"; these events' own share: {totals['events']:.2f} $"
    )
    if extrapolated:
        click.echo(
            textwrap.fill(
                "* extrapolated: the data covers only part of the season, so season $ (and "
                "owner $, aggregator $) is what the season would pay if its other events went "
                "as these did (events: settled / the season's expected); these events $ = "
                "season $ x settled events / season events, what 'lightson simulate' shows as "
                "DR share $",
                100,
            )
        )
    if uncovered:
        click.echo(f"note: {uncovered} event(s) fall outside the run and are not settled")
    if not lines:
        click.echo("no demand-response events inside the run")
