"""The live loop's load and PV forecasts per site, from what the site's meter recorded (#16).

Each site gets the forecaster that scored best (lowest load MAE on the held-out week of its
metered history, :mod:`lightson.forecast.scoring`) once it has ``min_days`` days of meter
history; before that, and for a site without a meter, the profile. The choice is remade
once a day; a forecast is made once per hour (its issue hour; training a model per tick
would cost more than a plan) and read at the plan's intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import select

from lightson.domain.assets import Program, Site
from lightson.domain.state import SiteForecast
from lightson.domain.time import TimeGrid
from lightson.forecast.history import PEAK_LEVEL, History, QuantileForecast
from lightson.forecast.registry import choose, forecast
from lightson.forecast.scoring import score
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

DEFAULT_MIN_DAYS = 14.0
HISTORY_DAYS = 56
ISSUE_EVERY = timedelta(hours=1)


def meter_history(store: Store, program: Program, site_id: str, end: datetime) -> History:
    """The site meter's readings over the ``HISTORY_DAYS`` before ``end``, averaged into
    the program's intervals (NaN where none was read)."""
    step = program.step
    start = end - HISTORY_DAYS * timedelta(days=1)
    grid = TimeGrid(start, round((end - start) / step), step)
    table = db.site_meter
    query = select(table.c.at, table.c.load_kw, table.c.pv_kw).where(
        table.c.site_id == site_id,
        table.c.at >= start.astimezone(UTC),
        table.c.at < end.astimezone(UTC),
    )
    sums = np.zeros((2, grid.n_steps))
    counts = np.zeros((2, grid.n_steps))
    with store.engine.connect() as connection:
        for row in connection.execute(query):
            k = int((aware(row.at) - grid.start) / step)
            if 0 <= k < grid.n_steps:
                sums[0, k] += row.load_kw
                counts[0, k] += 1
                if row.pv_kw is not None:
                    sums[1, k] += row.pv_kw
                    counts[1, k] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return History(grid, means[0], means[1])


@dataclass
class SiteForecasts:
    """Forecasts for the live loop (``LiveControl(forecasts=...)``; ``lightson serve
    --forecast-min-days``)."""

    program: Program
    store: Store
    min_days: float = DEFAULT_MIN_DAYS
    chosen: dict[str, tuple[date, str]] = field(default_factory=dict)
    _issued: dict[str, tuple[datetime, QuantileForecast, TimeGrid]] = field(default_factory=dict)

    def forecaster(self, site: Site, now: datetime) -> str:
        """The forecaster ``site`` uses today (scored again each day)."""
        today = now.astimezone(self.program.timezone).date()
        made = self.chosen.get(site.site_id)
        if made is not None and made[0] == today:
            return made[1]
        midnight = datetime.combine(today, datetime.min.time(), tzinfo=self.program.timezone)
        history = meter_history(self.store, self.program, site.site_id, midnight)
        name = "profile"
        if history.days >= self.min_days:
            scores = score(self.program, site, history, weeks=1)
            name = choose({s.forecaster: s.mae_kw for s in scores}, history.days, self.min_days)
        self.chosen[site.site_id] = (today, name)
        return name

    def forecast(self, site: Site, grid: TimeGrid) -> SiteForecast:
        """The median forecast over ``grid`` from the forecast issued this hour, with its
        ``PEAK_LEVEL`` load for the demand-peak constraint."""
        name = self.forecaster(site, grid.start)
        issue = grid.start.replace(minute=0, second=0, microsecond=0)
        cached = self._issued.get(site.site_id)
        if cached is None or cached[0] != issue or cached[2].end < grid.end:
            history = meter_history(self.store, self.program, site.site_id, issue)
            span = TimeGrid(issue, grid.n_steps + round(ISSUE_EVERY / grid.step), grid.step)
            cached = (issue, forecast(name, self.program, site, history, span), span)
            self._issued[site.site_id] = cached
        offset = round((grid.start - issue) / grid.step)
        made = cached[1].at(0.5, peak_level=PEAK_LEVEL)
        window = slice(offset, offset + grid.n_steps)
        upper = None if made.load_peak_kw is None else made.load_peak_kw[window].copy()
        return SiteForecast(made.load_kw[window].copy(), made.pv_kw[window].copy(), upper)
