"""``lightson report``: the program report from simulation runs (``docs/reports.md``)."""

from __future__ import annotations

from pathlib import Path

import click

from lightson.cli.app import friendly_errors, main

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
@click.option("--pdf", is_flag=True, help="Also write the page as a PDF (WeasyPrint).")
@friendly_errors
def report(run_dir: Path | None, compare_dirs: tuple[Path, ...], out: Path, pdf: bool) -> None:
    """Write the program report: overview, value by site kind, event performance, backup,
    drivers and buses, and with --compare the controllers side by side."""
    from lightson.domain.errors import ConfigError
    from lightson.reports.program_report import read_run, write_report

    folders = ([run_dir] if run_dir is not None else []) + list(compare_dirs)
    if not folders:
        raise ConfigError.at("--run", "give a run folder (lightson simulate --out DIR)")
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
