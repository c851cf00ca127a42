"""``lightson site``: a site's own data (its utility's interval load)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import click

from lightson.cli.app import friendly_errors, main
from lightson.config import load_program
from lightson.config.loader import BUNDLED_PROGRAMS, MA_2026_PROGRAM
from lightson.datasets import write_load_profile
from lightson.datasets.greenbutton import read_green_button
from lightson.domain.errors import ConfigError
from lightson.services.load_import import import_load, site_profile
from lightson.store import Store
from lightson.store.db import default_url

BUNDLED_SAMPLE = "greenbutton-sample.csv"


@main.group()
def site() -> None:
    """A site's own data: its utility's interval load (Green Button)."""


@site.command("import-load")
@click.argument("program_ref", metavar="PROGRAM")
@click.argument("file", metavar="FILE")
@click.option("--site", "site_id", required=True, help="The site whose load FILE is.")
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the site's learned profile (CSV) [default: SITE-load.csv next to "
    "the program file; in the current folder for a bundled program].",
)
@friendly_errors
def import_load_command(
    program_ref: str, file: str, site_id: str, db: str, profile_path: Path | None
) -> None:
    """Read FILE, a utility's Green Button interval data (ESPI XML, or the CSV Eversource and
    National Grid export; CSV times in the program's time zone), into the site's meter
    history in the database, and write the site's building profile learned from that whole
    history (month x weekday/weekend x hour), which the program file then names as the
    site's 'building: {file: ...}' instead of a reference building. Importing a file again
    writes the same rows. FILE may be 'greenbutton-sample.csv', a bundled sample, when no
    such file is here. See docs/operations.md."""
    program = load_program(program_ref)
    chosen = next((s for s in program.sites if s.site_id == site_id), None)
    if chosen is None:
        known = ", ".join(s.site_id for s in program.sites)
        raise ConfigError.at(
            "--site", f"no site '{site_id}' in {program.name} (its sites: {known})"
        )
    path = _input(file)
    data = read_green_button(path, program.timezone)
    tz = program.timezone
    click.echo(
        f"read {file}: {len(data.intervals)} intervals, {data.energy_kwh:.3f} kWh delivered, "
        f"{data.intervals[0].start.astimezone(tz):%Y-%m-%d %H:%M} to "
        f"{(data.intervals[-1].start + data.intervals[-1].duration).astimezone(tz):%Y-%m-%d %H:%M}"
        f" ({tz.key})"
    )
    for reason, count in sorted(data.skipped.items()):
        click.echo(f"left out: {count} {reason}")
    store = Store(db)
    try:
        done = import_load(store, chosen, data, datetime.now(UTC))
        shown = store.engine.url.render_as_string(hide_password=True)
        click.echo(f"stored {done.readings} readings of {site_id}'s meter in {shown}")
        target = profile_path or _profile_path(program_ref, site_id)
        learned = site_profile(store, chosen, target.stem)
    finally:
        store.close()
    write_load_profile(target, learned.profile)
    months = ", ".join(str(m) for m in learned.months_with_data)
    click.echo(
        f"wrote {target}: {site_id}'s building profile, {learned.profile.values.mean():.3f} kW "
        f"on average, from the months {months} of its meter history "
        f"({576 - learned.borrowed_bins} of 576 month x day type x hour averages measured, "
        "the rest from the nearest month)"
    )
    click.echo(
        f"to plan on it, give the site in the program file:  building: {{file: {target.name}}}"
        " (with scale 1; the path is relative to the program file)"
    )


def _input(file: str) -> Path:
    path = Path(file)
    if not path.exists() and file == BUNDLED_SAMPLE:
        with resources.as_file(resources.files("lightson") / "examples" / file) as bundled:
            return Path(bundled)
    return path


def _profile_path(program_ref: str, site_id: str) -> Path:
    if program_ref in (*BUNDLED_PROGRAMS, MA_2026_PROGRAM):
        return Path.cwd() / f"{site_id}-load.csv"
    return Path(program_ref).parent / f"{site_id}-load.csv"
