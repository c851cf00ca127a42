"""Time in Lights On: injected clocks and the interval grid plans are made on.

All instants are timezone-aware. Storage and plans use UTC; program rules (event
windows, trips, tariffs) are read in the program's local zone (``America/New_York``).
Hourly data files are in local *standard* time (UTC−5 all year), see ``tmy_hour_index``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.errors import ConfigError

HOURS_PER_TMY_YEAR = 8760
DEFAULT_STEP = timedelta(minutes=15)


class Clock(Protocol):
    """Where the current time comes from. The core never reads the wall clock itself."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SimClock:
    """A clock that moves only when told to: simulation and tests."""

    def __init__(self, start: datetime) -> None:
        require_aware(start, "start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("a SimClock never moves backwards")
        self._now += by
        return self._now


def require_aware(instant: datetime, name: str) -> None:
    """Refuse naive datetimes: an instant without a zone is ambiguous."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ConfigError.at(name, "must carry a timezone (for example 2026-07-15T00:00-04:00)")


@dataclass(frozen=True)
class TimeGrid:
    """``n_steps`` intervals of ``step`` starting at ``start``; interval ``t`` is
    ``[start + t·step, start + (t+1)·step)`` in real (UTC) time.

    ``start`` is kept in UTC: Python adds and subtracts datetimes that share a tzinfo as
    wall-clock times, which would shift every interval by an hour across a daylight-saving
    change."""

    start: datetime
    n_steps: int
    step: timedelta = DEFAULT_STEP

    def __post_init__(self) -> None:
        require_aware(self.start, "start")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.n_steps <= 0:
            raise ConfigError.at("n_steps", "must be > 0")
        if self.step <= timedelta(0) or timedelta(hours=1) % self.step != timedelta(0):
            raise ConfigError.at("step", "must divide one hour evenly (for example 15 minutes)")

    @property
    def step_h(self) -> float:
        return self.step.total_seconds() / 3600.0

    @property
    def end(self) -> datetime:
        return self.start + self.n_steps * self.step

    def starts_utc(self) -> list[datetime]:
        """Start instant of each interval, in UTC."""
        first = self.start.astimezone(UTC)
        return [first + t * self.step for t in range(self.n_steps)]

    def starts_local(self, tz: ZoneInfo) -> list[datetime]:
        """Start instant of each interval in the zone ``tz`` (daylight saving applied)."""
        first = self.start.astimezone(tz)
        last = (self.start + (self.n_steps - 1) * self.step).astimezone(tz)
        if (
            first.utcoffset() == last.utcoffset()
            and last - first <= _NO_TWO_CHANGES
            and not first.fold  # adding a timedelta drops the fold of a repeated hour
        ):
            # No clock change in between (two are weeks apart): local time moves with UTC.
            return [first + t * self.step for t in range(self.n_steps)]
        return [s.astimezone(tz) for s in self.starts_utc()]

    def index_of(self, instant: datetime) -> int:
        """The interval holding ``instant`` (may be outside ``0..n_steps-1``)."""
        return int((instant.astimezone(UTC) - self.start) // self.step)

    def first_index_from(self, instant: datetime) -> int:
        """The first interval that starts at or after ``instant`` (may be outside the grid)."""
        return int(-(-(instant.astimezone(UTC) - self.start) // self.step))

    def starts_within(self, windows: Iterable[tuple[datetime, datetime]]) -> NDArray[np.bool_]:
        """Whether each interval starts inside one of the ``[start, end)`` windows."""
        inside = np.zeros(self.n_steps, dtype=bool)
        for start, end in windows:
            first, last = self.first_index_from(start), self.first_index_from(end)
            inside[max(first, 0) : max(last, 0)] = True
        return inside


# Shorter than the time between two clock changes in any zone (a year, or about a month
# around Ramadan in Morocco), so equal offsets at both ends mean no change in between.
_NO_TWO_CHANGES = timedelta(days=7)

LOCAL_STANDARD = timezone(timedelta(hours=-5), "EST")


def tmy_hour_index(
    starts: list[datetime],
    standard_offset: timezone = LOCAL_STANDARD,
    first_weekday: int | None = None,
) -> NDArray[np.int64]:
    """Row of an hourly 8760-row typical-year file that covers each instant.

    Typical-year files (TMY3 weather, DOE load profiles) are hour-ending in local
    standard time with no year: row 0 is 01/01 00:00–01:00 standard time. The
    calendar year of ``starts`` is ignored; 29 February reads 28 February.

    With ``first_weekday`` (0 = Monday) — the weekday of row 0's day in a profile that
    follows a calendar, like the DOE/NREL building loads (1 January a Sunday) — the row is
    taken from the nearest day (±3) with the same weekday, so a Wednesday reads a
    Wednesday. Weather has no weekdays: leave it ``None``.
    """
    rows = np.empty(len(starts), dtype=np.int64)
    for i, instant in enumerate(starts):
        local = instant.astimezone(standard_offset)
        day_of_year = local.timetuple().tm_yday - 1
        if (_is_leap(local.year) and local.month > 2) or (local.month == 2 and local.day == 29):
            day_of_year -= 1
        if first_weekday is not None:
            shift = (local.weekday() - first_weekday - day_of_year) % 7
            day_of_year = (day_of_year + (shift - 7 if shift > 3 else shift)) % 365
        rows[i] = day_of_year * 24 + local.hour
    return rows


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
