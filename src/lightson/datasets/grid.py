"""EIA-930 hourly load of the ISO-NE NEMA/Boston zone (vendored, see PROVENANCE.md)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

from lightson.domain.errors import DataError

_FILE = "grid/ISNE-4008.csv"


@lru_cache(maxsize=1)
def read_zone_load() -> pd.Series:
    """Cleaned NEMA/Boston load (MW) indexed by the UTC *start* of each hour (the file is
    hour-ending in UTC), 2020-2024."""
    with resources.as_file(resources.files("lightson") / "data" / _FILE) as path:
        try:
            frame = pd.read_csv(path, usecols=["date_time", "cleaned demand (MW)"])
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read zone load ({error})") from error
    starts = pd.to_datetime(frame["date_time"]).dt.tz_localize("UTC") - pd.Timedelta(hours=1)
    return pd.Series(
        frame["cleaned demand (MW)"].to_numpy(dtype=float),
        index=pd.DatetimeIndex(starts),
        name="load_mw",
    )
