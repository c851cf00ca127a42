"""Reading typical-year hourly profiles (building load, PV) at arbitrary instants."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Building
from lightson.domain.time import LOCAL_STANDARD, tmy_hour_index
from lightson.physics.day_types import SUNDAY, is_holiday, profile_holidays

WEEK_DAYS = 7


def profile_at(
    values_8760: NDArray[np.float64], starts: list[datetime], first_weekday: int | None = None
) -> NDArray[np.float64]:
    """Value of an hourly typical-year profile for each instant (held over the hour); with
    ``first_weekday``, weekdays are matched (``tmy_hour_index``) and public holidays too
    (:func:`holiday_rows`)."""
    rows = tmy_hour_index(starts, first_weekday=first_weekday)
    if first_weekday is not None:
        rows = holiday_rows(rows, starts, first_weekday)
    return np.asarray(values_8760[rows], dtype=np.float64)


def holiday_rows(
    rows: NDArray[np.int64], starts: list[datetime], first_weekday: int
) -> NDArray[np.int64]:
    """Weekday-matched rows (``tmy_hour_index``) moved for holidays on either side: an
    instant on a Massachusetts public holiday reads the profile's nearest Sunday (±3 days);
    one on a working day that lands on a holiday of the profile's own calendar
    (``day_types.profile_holidays``) reads the same weekday a week before (after, in the
    first week)."""
    own = profile_holidays(first_weekday)
    first_day = date(min(own).year, 1, 1)
    moved = rows.copy()
    shifts: dict[tuple[date, int], int] = {}
    for i, instant in enumerate(starts):
        day, profile_day = instant.astimezone(LOCAL_STANDARD).date(), int(rows[i]) // 24
        key = (day, profile_day)
        if key not in shifts:
            shifts[key] = _day_shift(day, first_day + timedelta(days=profile_day), own)
        moved[i] = (profile_day + shifts[key]) % 365 * 24 + int(rows[i]) % 24
    return moved


def _day_shift(day: date, profile_day: date, own: frozenset[date]) -> int:
    if is_holiday(day):
        shift = (SUNDAY - profile_day.weekday()) % WEEK_DAYS
        return shift - WEEK_DAYS if shift > 3 else shift
    if profile_day in own:
        return WEEK_DAYS if profile_day.timetuple().tm_yday <= WEEK_DAYS else -WEEK_DAYS
    return 0


def building_load_kw(building: Building, starts: list[datetime]) -> NDArray[np.float64]:
    """Building load (kW, ≥ 0) at each instant: the profile times the building's scale."""
    profile = building.load_profile
    return building.scale * profile_at(profile.values, starts, profile.first_weekday)
