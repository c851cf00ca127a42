"""The live loop's forecaster per site: the profile on short meter history, the best-scored
one after (#16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from lightson.domain.assets import Program
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.services.forecasts import SiteForecasts, meter_history
from lightson.store import Store
from lightson.store import schema as db

STEP = timedelta(minutes=15)


def _meter(store: Store, site_id: str, end: datetime, days: int) -> None:
    """Readings every 15 minutes: 80 kW from 17:00 to 21:00 UTC, 30 kW otherwise."""
    start = end - timedelta(days=days)
    rows = []
    for k in range(days * 96):
        at = start + k * STEP
        load_kw = 80.0 if 17 <= at.hour < 21 else 30.0
        rows.append(
            (
                db.site_meter,
                {
                    "site_id": site_id,
                    "at": at,
                    "load_kw": load_kw,
                    "pv_kw": None,
                    "received_at": end,
                },
            )
        )
    store.write(rows).result(60)


def test_short_history_keeps_the_profile_then_the_best_scored(
    example_program: Program, tmp_path: Path
) -> None:
    site = example_program.sites[0]
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    now = datetime(2026, 7, 20, 4, 0, tzinfo=UTC)  # local midnight, America/New_York
    _meter(store, site.site_id, now, days=5)
    history = meter_history(store, example_program, site.site_id, now)
    assert history.days == 5
    assert (
        history.load_kw[-96 + 13 * 4] == 80.0
    )  # 17:00 UTC of the last day and np.isnan(history.load_kw[0])
    forecasts = SiteForecasts(example_program, store, min_days=14)
    grid = TimeGrid(now, 96, STEP)
    assert forecasts.forecaster(site, now) == "profile"
    made = forecasts.forecast(site, grid)
    assert np.array_equal(made.load_kw, profile_forecast(example_program, site, grid).load_kw)

    store2 = Store(f"sqlite:///{tmp_path / 'ops2.db'}")
    _meter(store2, site.site_id, now, days=21)
    longer = SiteForecasts(example_program, store2, min_days=14)
    name = longer.forecaster(site, now)
    assert name in {"recent-days", "learned"}  # both know the building's own evening
    made = longer.forecast(site, grid)
    hours = np.array([s.hour for s in grid.starts_utc()])
    evening = (hours >= 17) & (hours < 21)
    assert np.allclose(made.load_kw[evening], 80.0, atol=5)
    assert np.allclose(made.load_kw[~evening & (hours != 16) & (hours != 21)], 30.0, atol=5)
