"""``lightson events add|list|cancel|opt-out``: demand-response events for a program operator."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from lightson.cli.app import friendly_errors, main, program_argument
from lightson.config import load_program
from lightson.config.dr_rules import program_dr_rules
from lightson.csms.clock import AcceleratedClock
from lightson.domain.errors import ConfigError
from lightson.programs.events import ProgramEvent
from lightson.services.events import EventService
from lightson.store import Store, default_url

DB_OPTION = click.option("--db", default=default_url(), show_default=True, help="Database URL.")
EASTERN = "America/New_York"


def _time(text: str | None, option: str, zone: str) -> str | None:
    """An ISO time; without an offset it is read in ``zone``."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError.at(option, "must be a date and time like 2026-07-15T15:00") from None
    return (value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))).isoformat()


def event_window(event: ProgramEvent, tz: ZoneInfo) -> str:
    """An event's window as the program's wall clock, its zone named: ``2026-07-15
    15:00-18:00 EDT`` (the end's abbreviation too, should the window cross a change)."""
    start, end = event.start.astimezone(tz), event.end.astimezone(tz)
    start_zone = "" if start.tzname() == end.tzname() else f" {start:%Z}"
    day = "" if start.date() == end.date() else f"{end:%Y-%m-%d} "
    return f"{start:%Y-%m-%d %H:%M}{start_zone}-{day}{end:%H:%M %Z}"


def _show(event: ProgramEvent, zone: str) -> str:
    tz = ZoneInfo(zone)
    state = event.state(datetime.now(tz))
    sites = ", ".join(event.sites) if event.sites else "all enrolled"
    opted = f"; opted out: {', '.join(sorted(event.opt_outs))}" if event.opt_outs else ""
    return (
        f"{event.event_id:<28} {event.program_id:<24} {event_window(event, tz)}  "
        f"{state.value:<10} {sites}{opted}"
    )


@main.group()
def events() -> None:
    """Demand-response events: add, list, cancel, opt a site out."""


@events.command("add")
@DB_OPTION
@click.option("--program-id", required=True, help="cs-residential-battery, cs-ci-daily, …")
@click.option("--start", required=True, help="Event start (local time unless an offset is given).")
@click.option("--end", required=True)
@click.option("--notice", default=None, help="When the event was announced (default: now).")
@click.option("--id", "event_id", default=None, help="Event id (default: program and start).")
@click.option("--site", "sites", multiple=True, help="Call only these sites (repeatable).")
@click.option(
    "--timezone",
    "zone",
    default=None,
    help=f"Zone of times given without an offset, and of the times shown [default: the "
    f"program file's, else {EASTERN}].",
)
@program_argument("program_ref", None)
@friendly_errors
def events_add(
    db: str,
    program_id: str,
    start: str,
    end: str,
    notice: str | None,
    event_id: str | None,
    sites: tuple[str, ...],
    zone: str | None,
    program_ref: str | None,
) -> None:
    """Announce an event (refused, with the reason, if the program's rules forbid it)."""
    rules = None
    if program_ref is None:
        zone = zone or EASTERN
    else:
        program = load_program(program_ref)
        zone = zone or program.timezone.key
        known = {s.site_id for s in program.sites}
        unknown = sorted(set(sites) - known)
        if unknown:
            raise ConfigError.at("--site", f"not in the program: {', '.join(unknown)}")
        rules = list(program_dr_rules(program).values())
    start_text = _time(start, "--start", zone)
    assert start_text is not None
    body = {
        "event_id": event_id or f"{program_id}-{start_text[:16].replace(':', '')}",
        "program_id": program_id,
        "start": start_text,
        "end": _time(end, "--end", zone),
        "sites": list(sites),
        "source": "operator",
    }
    if notice is not None:
        body["notice_at"] = _time(notice, "--notice", zone)
    store = Store(db)
    try:
        event = EventService(store, AcceleratedClock(), rules).submit(body)
    finally:
        store.close()
    click.echo(f"announced: {_show(event, zone)}")


@events.command("list")
@DB_OPTION
@click.option("--timezone", "zone", default=EASTERN, show_default=True)
@friendly_errors
def events_list(db: str, zone: str) -> None:
    """Every event, oldest first, with its state."""
    store = Store(db)
    try:
        book = EventService(store, AcceleratedClock()).book()
    finally:
        store.close()
    for event in sorted(book.events.values(), key=lambda e: e.start):
        click.echo(_show(event, zone))
    if not book.events:
        click.echo("no events")


@events.command("cancel")
@click.argument("event_id")
@DB_OPTION
@friendly_errors
def events_cancel(event_id: str, db: str) -> None:
    """Cancel an event that has not ended."""
    store = Store(db)
    try:
        event = EventService(store, AcceleratedClock()).cancel(event_id)
    finally:
        store.close()
    click.echo(f"cancelled: {_show(event, EASTERN)}")


@events.command("opt-out")
@click.argument("event_id")
@click.argument("site_id")
@DB_OPTION
@friendly_errors
def events_opt_out(event_id: str, site_id: str, db: str) -> None:
    """A site owner declines one event (before it starts)."""
    store = Store(db)
    try:
        event = EventService(store, AcceleratedClock()).opt_out(event_id, site_id)
    finally:
        store.close()
    click.echo(f"opted out: {_show(event, EASTERN)}")
