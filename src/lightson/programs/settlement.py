"""Demand-response settlement: what each site earned in a season, line by line.

The rule (ConnectedSolutions, storage performance):

- An event's performance at a site is the net discharge of its V2X equipment over the event
  window, averaged to kW, never below 0. A site without export permission is credited at most
  its own building load over the window (it may not push power past its meter).
- The season-average kW is the sum of the event kW over every event the program called the
  site to while it was enrolled, divided by the number of those events: a missed event (or one
  the owner opted out of) counts 0 kW; a targeted event that did not call the site does not
  count for it.
- Payment = rate × season-average kW. Where the season has a weekend bonus, the bonus is
  ``weekend_bonus × the average kW over the season's weekend events`` (missed ones 0).
- With an aggregator, the payment is split: ``participant_share`` to the site owner, the rest
  to the aggregator.

A season the data covers only in part (a few days' run, a season not over yet) is
**extrapolated**: the payment above is what the season would pay if its other events went as
these did. The line says so, and gives beside it the settled events' own share of that
payment, ``total ÷ (season events ÷ settled events)``, the season's events being its expected
count (or those already called, when more). That share is what ``lightson simulate`` credits
a run with (``DR share $``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lightson.programs.rules import ProgramRules, SeasonRules

WEEKEND = (5, 6)  # Saturday, Sunday


@dataclass(frozen=True)
class CalledEvent:
    """An event the program called, in the season being settled."""

    event_id: str
    program_id: str
    start: datetime  # timezone-aware; dates and weekdays are read in the program's zone
    end: datetime
    sites: tuple[str, ...] = ()  # the sites called; none named: every enrolled site

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def calls(self, site_id: str) -> bool:
        """An opt-out still counts as called (and missed: 0 kW); a targeted event that did
        not name the site does not count for it."""
        return not self.sites or site_id in self.sites


@dataclass(frozen=True)
class Metered:
    """What a site's meters say about one event: the V2X equipment's net discharge (kWh,
    + out of the vehicles) and the building load (kWh) over the event window."""

    net_discharge_kwh: float
    building_load_kwh: float


def event_kw(metered: Metered, hours: float, export_permitted: bool, cap_to_load: bool) -> float:
    """Performance in one event (kW): net discharge averaged over the window, floored at 0,
    capped at the building load where the site may not export."""
    if hours <= 0:
        raise ValueError("an event lasts a positive time")
    delivered_kwh = max(metered.net_discharge_kwh, 0.0)
    if cap_to_load and not export_permitted:
        delivered_kwh = min(delivered_kwh, max(metered.building_load_kwh, 0.0))
    return delivered_kwh / hours


@dataclass(frozen=True)
class EventLine:
    site_id: str
    program_id: str
    event_id: str
    start: datetime
    hours: float
    weekend: bool
    net_discharge_kwh: float | None  # None: no data (counted 0)
    building_load_kwh: float | None
    credited_kw: float


@dataclass(frozen=True)
class SettlementLine:
    site_id: str
    program_id: str
    season: str
    events_called: int
    events_with_delivery: int
    season_average_kw: float
    rate_usd_per_kw: float
    payment_usd: float
    weekend_events: int
    weekend_average_kw: float
    weekend_bonus_usd: float
    total_usd: float
    participant_usd: float
    aggregator_usd: float
    # A season the data covers in part: total_usd is a projection (module docstring).
    extrapolated: bool = False
    season_events: int = 0  # the events the season is taken to have
    events_payment_usd: float = 0.0  # the settled events' own share of total_usd

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EnrolledSite:
    site_id: str
    export_permitted: bool
    participant_share: float = 1.0  # the rest goes to the aggregator

    def __post_init__(self) -> None:
        if not 0.0 <= self.participant_share <= 1.0:
            raise ValueError(f"{self.site_id}: participant_share must be within 0..1")


def extrapolation_factor(season_events: int, settled_events: int) -> float:
    """How many times the settled events' share the season's payment is: season events ÷
    settled events (1 when none were settled: there is nothing to scale)."""
    if settled_events <= 0:
        return 1.0
    return max(season_events, settled_events) / settled_events


def covers_season(
    season: SeasonRules,
    season_year: int,
    timezone: ZoneInfo,
    covered: tuple[datetime | None, datetime] | None,
) -> bool:
    """Whether the data covers the whole season: ``covered`` is [from, until) (``from``
    None: since before the season; ``covered`` None: the whole season, never extrapolated)."""
    if covered is None:
        return True
    first_day, last_day = season.days(season_year)
    begins = datetime.combine(first_day, time(0), timezone)
    ends = datetime.combine(last_day + timedelta(days=1), time(0), timezone)
    since, until = covered
    return (since is None or since <= begins) and until >= ends


def settle(
    rules: ProgramRules,
    season_name: str,
    season_year: int,
    events: Sequence[CalledEvent],
    sites: Sequence[EnrolledSite],
    metered: Mapping[tuple[str, str], Metered],
    covered: tuple[datetime | None, datetime] | None = None,
) -> tuple[list[SettlementLine], list[EventLine]]:
    """Settle one season of one program. ``metered`` is keyed by (site id, event id); an
    event with no data for a site counts 0 kW for it. ``covered``: the span the data covers
    (``covers_season``); a season it covers in part is extrapolated."""
    season = next((s for s in rules.seasons if s.name == season_name), None)
    if season is None:
        known = ", ".join(s.name for s in rules.seasons)
        raise ValueError(f"{rules.program_id} has no season {season_name!r} (known: {known})")
    whole = covers_season(season, season_year, rules.timezone, covered)

    def local_day(event: CalledEvent) -> date:
        return event.start.astimezone(rules.timezone).date()

    called = sorted(
        (
            e
            for e in events
            if e.program_id == rules.program_id
            and season.contains(local_day(e))
            and season.season_year(local_day(e)) == season_year
        ),
        key=lambda e: e.start,
    )
    lines, event_lines = [], []
    for site in sites:
        credited = []
        for event in (e for e in called if e.calls(site.site_id)):
            weekend = local_day(event).weekday() in WEEKEND
            reading = metered.get((site.site_id, event.event_id))
            kw = (
                0.0
                if reading is None
                else event_kw(
                    reading, event.hours, site.export_permitted, rules.cap_to_load_without_export
                )
            )
            credited.append((weekend, kw))
            event_lines.append(
                EventLine(
                    site.site_id,
                    rules.program_id,
                    event.event_id,
                    event.start,
                    event.hours,
                    weekend,
                    None if reading is None else reading.net_discharge_kwh,
                    None if reading is None else reading.building_load_kwh,
                    kw,
                )
            )
        average_kw = sum(kw for _, kw in credited) / len(credited) if credited else 0.0
        weekend_kws = [kw for on_weekend, kw in credited if on_weekend]
        weekend_kw = sum(weekend_kws) / len(weekend_kws) if weekend_kws else 0.0
        payment = season.rate_usd_per_kw * average_kw
        bonus = season.weekend_bonus_usd_per_kw * weekend_kw
        total = payment + bonus
        season_events = len(credited) if whole else max(season.expected_events, len(credited))
        lines.append(
            SettlementLine(
                site_id=site.site_id,
                program_id=rules.program_id,
                season=f"{season.name} {season_year}",
                events_called=len(credited),
                events_with_delivery=sum(kw > 0 for _, kw in credited),
                season_average_kw=average_kw,
                rate_usd_per_kw=season.rate_usd_per_kw,
                payment_usd=payment,
                weekend_events=len(weekend_kws),
                weekend_average_kw=weekend_kw,
                weekend_bonus_usd=bonus,
                total_usd=total,
                participant_usd=total * site.participant_share,
                aggregator_usd=total * (1.0 - site.participant_share),
                extrapolated=not whole,
                season_events=season_events,
                events_payment_usd=total / extrapolation_factor(season_events, len(credited)),
            )
        )
    return lines, event_lines
