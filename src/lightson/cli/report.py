"""``lightson report``: the program report from simulation runs (``docs/reports.md``)."""

from __future__ import annotations

from pathlib import Path

import click

from lightson.cli.app import friendly_errors, main, program_argument
from lightson.config import EXAMPLE_PROGRAM

RunDir = click.Path(file_okay=False, exists=True, path_type=Path)


@main.command()
@click.option("--run", "run_dir", type=RunDir, help="A 'lightson simulate' output folder.")
@click.option(
    "--compare",
    "compare_dirs",
    type=RunDir,
    multiple=True,
    help="Another run of the same world with another controller (repeat for several); an "
    "unmanaged run is the baseline for savings.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML page; its tables go to <name>_tables/ as CSV and Parquet.",
)
@click.option(
    "--db",
    default=None,
    help="Instead of runs: the operations database of a live season, e.g. "
    "sqlite:///lightson.db (events, equipment, data completeness, settlement).",
)
@program_argument("program_ref", None)
@click.option(
    "--days",
    default=120,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="With --db: how far back the season report looks.",
)
@click.option(
    "--season",
    "season_year",
    type=click.IntRange(1901, 2199),
    default=None,
    help="With --db: report on this calendar year (program time) instead of the last --days.",
)
@click.option("--pdf", is_flag=True, help="Also write the page as a PDF (WeasyPrint).")
@friendly_errors
def report(
    run_dir: Path | None,
    compare_dirs: tuple[Path, ...],
    db: str | None,
    program_ref: str | None,
    days: int,
    season_year: int | None,
    out: Path,
    pdf: bool,
) -> None:
    """Write the program report from simulation runs (overview, value by site kind, event
    performance, backup, drivers and buses, and with --compare the controllers side by
    side), or with --db a live season's report (events, equipment, data completeness,
    settlement)."""
    from lightson.domain.errors import ConfigError
    from lightson.reports.program_report import read_run, write_report

    folders = ([run_dir] if run_dir is not None else []) + list(compare_dirs)
    if db is not None:
        if folders:
            raise ConfigError.at("--db", "give either run folders or --db, not both")
        if program_ref is None:
            click.echo(f"note: no PROGRAM given: using the bundled '{EXAMPLE_PROGRAM}'", err=True)
        _season(db, program_ref or EXAMPLE_PROGRAM, days, season_year, out, pdf)
        return
    if season_year is not None:
        raise ConfigError.at("--season", "is for --db (a run reports on the period it simulated)")
    if not folders:
        raise ConfigError.at("--run", "give a run folder (lightson simulate --out DIR) or --db")
    runs = []
    for number, folder in enumerate(folders, start=1):
        click.echo(f"reading {folder} ({number}/{len(folders)})", err=True)
        runs.append(read_run(folder))
    click.echo("writing the report" + (" and its PDF" if pdf else ""), err=True)
    written = write_report(runs, out, pdf=pdf)
    click.echo(f"report: {written[0]}")
    if pdf:
        click.echo(f"pdf: {written[1]}")
    click.echo(f"tables: {written[-1].parent}/")


def _season(
    db: str, program_ref: str, days: int, season_year: int | None, out: Path, pdf: bool
) -> None:
    from datetime import UTC, datetime, timedelta

    from lightson.config import load_program
    from lightson.csms.clock import AcceleratedClock
    from lightson.services.events import EventService
    from lightson.services.season_report import write_season_report
    from lightson.store import Store

    program = load_program(program_ref)
    store = Store(db)
    try:
        click.echo(f"reading {db}", err=True)
        events = EventService(store, AcceleratedClock())
        now = datetime.now(UTC)
        since = now - timedelta(days=days)
        if season_year is not None:
            since = datetime(season_year, 1, 1, tzinfo=program.timezone)
            now = min(now, datetime(season_year + 1, 1, 1, tzinfo=program.timezone))
        rules = {r.program_id: r for r in events.rules}
        click.echo("measuring the sites and writing the report", err=True)
        written = write_season_report(
            store, program, events.book(), rules, since, now, out, pdf=pdf
        )
    finally:
        store.close()
    click.echo(f"report: {written[0]}")
    if pdf:
        click.echo(f"pdf: {written[1]}")
    click.echo(f"tables: {written[-1].parent}/")
    click.echo(f"interval data: {out.with_name(out.stem + '_run')}/")
