"""``lightson failure-rates``: the twin's failure model measured from a live season's database
against the twin's assumptions (``services.field_failures``, docs/simulation.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from lightson.cli.app import friendly_errors, main, parse_start, program_argument
from lightson.config import load_program

if TYPE_CHECKING:
    from lightson.domain.assets import Program
    from lightson.services.field_failures import FieldFailureRates

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # "everything recorded"


@main.command("failure-rates")
@program_argument()
@click.option("--db", required=True, help="The operations database, e.g. sqlite:///lightson.db.")
@click.option("--since", help="First instant measured (default: the first record).")
@click.option("--until", help="End of the period measured (default: now).")
@click.option(
    "--yaml",
    "as_yaml",
    is_flag=True,
    help="Print the field's rates as a program file's 'failures:' section instead.",
)
@friendly_errors
def failure_rates(
    program_file: str, db: str, since: str | None, until: str | None, as_yaml: bool
) -> None:
    """Print the failure rates measured in the field vs the twin's assumptions: charger
    faults and link losses, opt-outs, late plug-ins, early departures, summer routes."""
    import yaml

    from lightson.services.field_failures import failures_section, rates_table

    program = load_program(program_file)
    first = parse_start(since, program, "--since") if since else EARLIEST
    last = parse_start(until, program, "--until") if until else datetime.now(UTC)
    rates = measure(db, program, first, last)
    if as_yaml:
        click.echo(yaml.safe_dump({"failures": failures_section(rates.model())}, sort_keys=False))
        return
    tz = program.timezone
    first_local, last_local = rates.since.astimezone(tz), rates.until.astimezone(tz)
    click.echo(
        "failure rates measured in the field "
        f"({first_local:%Y-%m-%d %H:%M} to {last_local:%Y-%m-%d %H:%M}) vs the twin's assumptions"
    )
    rows = rates_table(rates)
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    click.echo("  ".join(k.ljust(widths[k]) for k in widths).rstrip())
    for row in rows:
        click.echo("  ".join(row[k].ljust(widths[k]) for k in widths).rstrip())


def measure(url: str, program: Program, since: datetime, until: datetime) -> FieldFailureRates:
    """The rates recorded in ``url``'s database in [since, until)."""
    from lightson.csms.clock import AcceleratedClock
    from lightson.services.events import EventService
    from lightson.services.field_failures import measure_failure_rates
    from lightson.store import Store

    store = Store(url)
    try:
        book = EventService(store, AcceleratedClock()).book()
        return measure_failure_rates(store, program, book, since, until)
    finally:
        store.close()


def field_rates_until_now(url: str, program: Program) -> FieldFailureRates:
    """Everything the database recorded, up to now (``simulate --failures-from-db``)."""
    return measure(url, program, EARLIEST, datetime.now(UTC) + timedelta(seconds=1))
