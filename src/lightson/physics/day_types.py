"""Day types for loads: which local days a building works, and which public holidays it
keeps (#16).

A public holiday is a day off: a building's load follows its Sunday, not the weekday it
falls on. The calendar is Massachusetts' (the ``holidays`` package, ``US`` subdivision
``MA``: New Year's Day, Martin Luther King Jr. Day, Washington's Birthday, Patriots' Day,
Memorial Day, Juneteenth, Independence Day, Labor Day, Columbus Day, Veterans Day,
Thanksgiving, Christmas, with their observed days), the same the program rules read for
event days (``programs.events``).

The DOE/NREL typical-year building loads follow a calendar of their own (1 January a
Sunday: 2006) and keep its US federal holidays (their low days are 2006's MLK Day,
Presidents' Day, Memorial Day, 4 July, Labor Day, Columbus Day, Thanksgiving and
Christmas): :func:`profile_holidays` gives them, so a working day is never read from one.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

COUNTRY = "US"
SUBDIVISION = "MA"
SUNDAY = 6


@lru_cache(maxsize=64)
def public_holidays(year: int) -> frozenset[date]:
    """Massachusetts public holidays of ``year`` (observed days included)."""
    return frozenset(holidays.country_holidays(COUNTRY, subdiv=SUBDIVISION, years=year))


def is_holiday(day: date) -> bool:
    return day in public_holidays(day.year)


def load_weekday(day: date) -> int:
    """The weekday (0 = Monday) whose load ``day`` follows: Sunday's on a public holiday."""
    return SUNDAY if is_holiday(day) else day.weekday()


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a public holiday."""
    return load_weekday(day) < 5


@lru_cache(maxsize=8)
def profile_holidays(first_weekday: int) -> frozenset[date]:
    """US federal holidays of the calendar a typical-year profile follows (the first
    non-leap year from 2001 whose 1 January falls on ``first_weekday``, 0 = Monday)."""
    year = next(
        y for y in range(2001, 2030) if y % 4 != 0 and date(y, 1, 1).weekday() == first_weekday
    )
    return frozenset(holidays.country_holidays(COUNTRY, years=year))
