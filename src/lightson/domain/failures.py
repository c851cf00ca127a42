"""How a program's equipment and people fail: the parameters of the twin's failure model.

Six causes take a vehicle's discharge away from a demand-response event (``FailureCause``):
the charger faults, the charger loses its link to the platform, the owner opts out of the
event, the owner plugs in late after a trip, the vehicle leaves early, or a school bus runs a
summer route. ``FIELD_FAILURES`` holds the defaults, each with its source in
``docs/simulation.md``; ``NO_FAILURES`` is the world of perfect equipment and punctual owners.

``CAUSES`` is the one table of the causes' names and categories: the twin's KPIs and report,
the live season's report (``reports.program_report.shortfall_reason``) and the failure rates
measured in the field (``services.field_failures``) all name a cause by it.

A ``ChargerDowntime`` is a known fault or communication loss (a field record to replay, or a
test's hand-made fault): it happens whatever the random draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from enum import Enum

HOURS_PER_YEAR = 8766.0  # 365.25 days


class FailureCause(Enum):
    """Why a vehicle's discharge was missing from an event (the order is the attribution's
    priority: a vehicle away for a reason is not also counted as faulted)."""

    EARLY_DEPARTURE = "early_departure"
    LATE_PLUG_IN = "late_plug_in"
    ROUTE = "route"
    FAULT = "fault"
    COMMS = "comms"
    OPT_OUT = "opt_out"


class CauseCategory(Enum):
    """Who or what a cause belongs to: the charger, its link to the platform, the owner, or
    the fleet's operations."""

    EQUIPMENT = "equipment"
    COMMUNICATION = "communication"
    OWNER = "owner"
    OPERATIONS = "operations"


@dataclass(frozen=True)
class CauseInfo:
    """A cause as reports and tables name it: ``label`` in words, ``category``, and the
    program file's ``failures:`` key of its parameters."""

    label: str
    category: CauseCategory
    file_key: str


CAUSES: Mapping[FailureCause, CauseInfo] = {
    FailureCause.EARLY_DEPARTURE: CauseInfo("left early", CauseCategory.OWNER, "early_departure"),
    FailureCause.LATE_PLUG_IN: CauseInfo("plugged in late", CauseCategory.OWNER, "late_plug_in"),
    FailureCause.ROUTE: CauseInfo("summer route", CauseCategory.OPERATIONS, "summer_route"),
    FailureCause.FAULT: CauseInfo("charger fault", CauseCategory.EQUIPMENT, "charger_faults"),
    FailureCause.COMMS: CauseInfo(
        "communication lost", CauseCategory.COMMUNICATION, "communication_losses"
    ),
    FailureCause.OPT_OUT: CauseInfo("opted out", CauseCategory.OWNER, "opt_out"),
}


def cause_label(cause: FailureCause) -> str:
    return CAUSES[cause].label


@dataclass(frozen=True)
class Downtime:
    """Random spells of a charger out of service: a Poisson process of ``per_charger_year``
    starts per charger, each lasting a lognormal time of median ``median_hours`` and log
    standard deviation ``sigma`` (mean ``median · exp(σ²/2)``)."""

    per_charger_year: float
    median_hours: float
    sigma: float = 1.0

    @property
    def mean_hours(self) -> float:
        return self.median_hours * math.exp(self.sigma**2 / 2)

    @property
    def unavailability(self) -> float:
        """Expected share of the time out of service (small rates: rate × mean duration)."""
        return self.per_charger_year * self.mean_hours / HOURS_PER_YEAR


@dataclass(frozen=True)
class Delay:
    """With ``probability`` per trip, a shift of a lognormal number of hours (median
    ``median_hours``, log standard deviation ``sigma``, at most ``max_hours``)."""

    probability: float
    median_hours: float
    sigma: float = 0.75
    max_hours: float = 8.0


@dataclass(frozen=True)
class SummerRoute:
    """A school bus's summer route (summer school, camps): on each of ``weekdays``
    (0 = Monday) of ``months``, with ``probability``, away from ``depart_local`` to
    ``return_local`` using ``energy_kwh``. Only vehicles at school sites run it."""

    probability: float
    months: frozenset[int] = frozenset({7, 8})
    weekdays: frozenset[int] = frozenset(range(5))
    depart_local: time = time(7, 30)
    return_local: time = time(15, 30)
    energy_kwh: float = 50.0


@dataclass(frozen=True)
class FailureModel:
    """Which failures a site lives with and how often; ``None``: that cause never happens.
    ``opt_out_probability`` is per site and event, by site kind (``home``, ``business``,
    ``school``; a kind not named never opts out)."""

    charger_faults: Downtime | None = None
    communication_losses: Downtime | None = None
    opt_out_probability: tuple[tuple[str, float], ...] = ()
    late_plug_in: Delay | None = None
    early_departure: Delay | None = None
    summer_route: SummerRoute | None = None

    def opt_out(self, kind: str) -> float:
        return dict(self.opt_out_probability).get(kind, 0.0)

    @property
    def any(self) -> bool:
        return self != NO_FAILURES


@dataclass(frozen=True)
class ChargerDowntime:
    """A known spell of ``cause`` (``FAULT`` or ``COMMS``) at one charger."""

    site_id: str
    evse_id: str
    cause: FailureCause
    start: datetime
    end: datetime


NO_FAILURES = FailureModel()

# Sources and reasoning: docs/simulation.md, "The failure model".
FIELD_CHARGER_FAULTS = Downtime(per_charger_year=3.0, median_hours=48.0, sigma=1.0)
FIELD_COMMUNICATION_LOSSES = Downtime(per_charger_year=12.0, median_hours=1.0, sigma=1.0)
FIELD_OPT_OUT = (("home", 0.10), ("business", 0.05), ("school", 0.0))
FIELD_LATE_PLUG_IN = Delay(probability=0.10, median_hours=2.0)
FIELD_EARLY_DEPARTURE = Delay(probability=0.05, median_hours=1.0)
FIELD_SUMMER_ROUTE = SummerRoute(probability=0.10)

FIELD_FAILURES = FailureModel(
    charger_faults=FIELD_CHARGER_FAULTS,
    communication_losses=FIELD_COMMUNICATION_LOSSES,
    opt_out_probability=FIELD_OPT_OUT,
    late_plug_in=FIELD_LATE_PLUG_IN,
    early_departure=FIELD_EARLY_DEPARTURE,
    summer_route=FIELD_SUMMER_ROUTE,
)
