"""Reading typical-year hourly profiles (building load, PV) at arbitrary instants."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Building
from lightson.domain.time import tmy_hour_index


def profile_at(
    values_8760: NDArray[np.float64], starts: list[datetime], first_weekday: int | None = None
) -> NDArray[np.float64]:
    """Value of an hourly typical-year profile for each instant (held over the hour); with
    ``first_weekday``, weekdays are matched (``tmy_hour_index``)."""
    rows = tmy_hour_index(starts, first_weekday=first_weekday)
    return np.asarray(values_8760[rows], dtype=np.float64)


def building_load_kw(building: Building, starts: list[datetime]) -> NDArray[np.float64]:
    """Building load (kW, ≥ 0) at each instant: the profile times the building's scale."""
    profile = building.load_profile
    return building.scale * profile_at(profile.values, starts, profile.first_weekday)
