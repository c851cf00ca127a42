"""Arrival-time distributions at home chargers (ElaadNL via ev2gym; PROVENANCE.md §5)."""

from __future__ import annotations

import csv
import io
from datetime import time
from functools import lru_cache
from importlib import resources

from lightson.domain.errors import DataError


@lru_cache(maxsize=2)
def read_home_arrivals(weekend: bool = False) -> list[tuple[time, float]]:
    """(arrival time of day in 15-minute bins, share in %) of home ('private') chargers."""
    name = "distribution-of-arrival-weekend.csv" if weekend else "distribution-of-arrival.csv"
    text = (resources.files("lightson") / "data" / "ev" / name).read_text(encoding="utf-8-sig")
    try:
        rows = [
            (time.fromisoformat(r["Arrival time"]), float(r["private"]))
            for r in csv.DictReader(io.StringIO(text))
        ]
    except (KeyError, ValueError) as error:
        raise DataError(f"{name}: unexpected arrival-distribution format ({error})") from error
    if len(rows) != 96:
        raise DataError(f"{name}: expected 96 quarter-hour rows, found {len(rows)}")
    return rows
