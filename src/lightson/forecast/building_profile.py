"""A building's own typical-year profile learned from its metered history (a utility's
Green Button data, the site meter): the average load for each month × day type (weekday,
weekend) × hour, laid on a typical year.

The profile is hourly in local standard time (UTC−5), as every typical-year file
(``HourlyProfile``), on a calendar whose 1 January is a Sunday like the DOE/OpenEI profiles
(``first_weekday`` = 6), so that :func:`lightson.physics.profiles.profile_at` reads a
Wednesday's row for a Wednesday.

Averaging: each interval's energy is spread over the standard-time hours it covers; an
hour's load is its energy over the hours of it covered (kWh / h = kW), so an hour with a
missing quarter still reads right; a bin's value is the mean of its hours. A bin with no
data borrows the same hour and day type of the nearest month that has it (a few days of
history make a flat year of those days), then the other day type's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import HourlyProfile
from lightson.domain.time import LOCAL_STANDARD

PROFILE_YEAR = 2023  # not a leap year, and 1 January 2023 was a Sunday
FIRST_WEEKDAY = 6
WEEKDAY, WEEKEND = 0, 1
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, eq=False)
class LearnedProfile:
    """The profile and how it was made: ``mean_kw[month - 1, day_type, hour]`` (NaN where no
    data), hours of data behind each bin, and how many bins were borrowed."""

    profile: HourlyProfile
    mean_kw: NDArray[np.float64]
    hours: NDArray[np.int64]

    @property
    def months_with_data(self) -> list[int]:
        return [m + 1 for m in range(12) if self.hours[m].sum() > 0]

    @property
    def borrowed_bins(self) -> int:
        """Month × day type × hour bins filled from another bin (of 12 × 2 × 24 = 576)."""
        return int(np.isnan(self.mean_kw).sum())


def hourly_energy_kwh(
    intervals: Iterable[tuple[datetime, timedelta, float]],
) -> dict[datetime, tuple[float, float]]:
    """Energy (kWh) and hours covered in each local-standard-time hour (keyed by the hour's
    naive local start), each interval's energy spread evenly over its length."""
    hours: dict[datetime, tuple[float, float]] = {}
    for start, duration, energy_kwh in intervals:
        length_h = duration.total_seconds() / 3600
        if length_h <= 0:
            continue
        at = start.astimezone(LOCAL_STANDARD).replace(tzinfo=None)
        end = at + duration
        while at < end:
            hour = at.replace(minute=0, second=0, microsecond=0)
            piece_end = min(end, hour + _HOUR)
            piece_h = (piece_end - at).total_seconds() / 3600
            kwh, covered = hours.get(hour, (0.0, 0.0))
            hours[hour] = (kwh + energy_kwh * piece_h / length_h, covered + piece_h)
            at = piece_end
    return hours


def day_type(day: date) -> int:
    return WEEKEND if day.weekday() >= 5 else WEEKDAY


def learned_profile(
    intervals: Iterable[tuple[datetime, timedelta, float]], name: str, source: str = ""
) -> LearnedProfile:
    """The typical-year profile of metered ``intervals`` (start UTC, length, kWh delivered).
    Raises ``ValueError`` when there is no interval."""
    total_kw = np.zeros((12, 2, 24))
    hours = np.zeros((12, 2, 24), dtype=np.int64)
    for hour, (kwh, covered_h) in hourly_energy_kwh(intervals).items():
        index = (hour.month - 1, day_type(hour.date()), hour.hour)
        total_kw[index] += kwh / covered_h
        hours[index] += 1
    if hours.sum() == 0:
        raise ValueError("no metered interval to learn a profile from")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_kw = np.where(hours > 0, total_kw / np.maximum(hours, 1), np.nan)
    filled = _filled(mean_kw)
    values = np.empty(8760)
    first = date(PROFILE_YEAR, 1, 1)
    for day_index in range(365):
        day = first + timedelta(days=day_index)
        values[day_index * 24 : day_index * 24 + 24] = filled[day.month - 1, day_type(day)]
    profile = HourlyProfile(name, values, source=source, first_weekday=FIRST_WEEKDAY)
    return LearnedProfile(profile, mean_kw, hours)


def _filled(mean_kw: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each empty bin from the nearest month (either way round the year, the earlier on a
    tie) with the same day type and hour, else from the other day type's filled bin."""
    filled = mean_kw.copy()
    for kind in (WEEKDAY, WEEKEND):
        for hour in range(24):
            known = [m for m in range(12) if not np.isnan(mean_kw[m, kind, hour])]
            for month in range(12):
                if np.isnan(filled[month, kind, hour]) and known:
                    nearest = min(known, key=lambda m: (_months_apart(m, month), (month - m) % 12))
                    filled[month, kind, hour] = mean_kw[nearest, kind, hour]
    for kind in (WEEKDAY, WEEKEND):
        other = filled[:, 1 - kind, :]
        gaps = np.isnan(filled[:, kind, :])
        filled[:, kind, :][gaps] = other[gaps]
    # An hour never metered on any day: the mean of the metered hours of its day type.
    for kind in (WEEKDAY, WEEKEND):
        gaps = np.isnan(filled[:, kind, :])
        if gaps.any():
            filled[:, kind, :][gaps] = float(np.nanmean(filled[:, kind, :]))
    return filled


def _months_apart(a: int, b: int) -> int:
    apart = abs(a - b)
    return min(apart, 12 - apart)
