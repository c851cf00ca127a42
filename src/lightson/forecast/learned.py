"""The ``learned`` forecaster: LightGBM quantile regression on the site's own history (#16).

Why LightGBM rather than statsforecast or skforecast: one model gives any quantile (the
``quantile`` objective, here 10/50/90 %), takes exogenous inputs (the weather's temperature)
and calendar features as plain columns, and is one small wheel with no further stack
(numpy, scipy); statsforecast's models are univariate at heart and skforecast wraps a
regressor library we would install anyway.

Features of the value at interval ``t`` forecast at the issue time ``t₀`` (the plan's start;
every feature is known at ``t₀``): local hour of day, weekday (a public holiday's is
Sunday's), a public-holiday flag, month, air temperature (the program's TMY3 weather; the
twin's truth), lead time ``t − t₀`` in hours, the mean of the
last hour before ``t₀``, the value at the same time on the latest day before ``t₀``
(``t − d·24 h`` with the smallest such ``d ≥ 1``) and on the latest week before ``t₀``.

Training rows are made the same way from the history alone: issue times every
``ISSUE_STRIDE`` within it, targets up to ``HORIZON`` ahead *that are themselves in the
history*, so nothing at or after the plan's start is ever a target or a feature
(:func:`training_rows`, tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site
from lightson.domain.time import TimeGrid
from lightson.forecast.history import LEVELS, History, QuantileForecast
from lightson.forecast.profiles import profile_forecast
from lightson.physics.day_types import is_holiday, load_weekday
from lightson.physics.profiles import profile_at

HORIZON = timedelta(hours=36)
ISSUE_STRIDE = timedelta(hours=6)
MIN_HISTORY = timedelta(days=8)  # a week for the weekly lag, and a day of targets
TREES = 80
PARAMS = {
    "objective": "quantile",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "seed": 0,
}
FEATURES = (
    "hour",
    "weekday",
    "holiday",
    "month",
    "temp_c",
    "lead_h",
    "last_kw",
    "day_kw",
    "week_kw",
)


@dataclass(frozen=True, eq=False)
class Rows:
    """Feature matrix (columns ``FEATURES``), targets, and the timeline index of each
    target (into history + gap + forecast grid)."""

    features: NDArray[np.float64]
    target_kw: NDArray[np.float64]
    target_index: NDArray[np.int64]


def _calendar(program: Program, timeline: TimeGrid) -> NDArray[np.float64]:
    """hour, weekday, holiday, month, temperature per interval of ``timeline`` (local
    time). A public holiday's weekday is Sunday's (``physics.day_types``), so a holiday is
    forecast like a Sunday even before the history holds one; the flag lets the model
    tell them apart once it does."""
    starts = timeline.starts_utc()
    local = [s.astimezone(program.timezone) for s in starts]
    hour = np.array([t.hour + t.minute / 60 for t in local])
    weekday = np.array([float(load_weekday(t.date())) for t in local])
    holiday = np.array([float(is_holiday(t.date())) for t in local])
    month = np.array([float(t.month) for t in local])
    if program.weather is None:
        temp = np.full(len(starts), np.nan)
    else:
        temp = profile_at(program.weather.temp_air_c, starts)
    return np.column_stack([hour, weekday, holiday, month, temp])


def _rows(
    values: NDArray[np.float64],
    calendar: NDArray[np.float64],
    issue: int,
    leads: NDArray[np.int64],
    per_day: int,
) -> NDArray[np.float64]:
    """Features of timeline indices ``issue + leads`` issued at ``issue`` (only
    ``values[:issue]`` is read)."""
    target = issue + leads
    last = values[max(issue - per_day // 24, 0) : issue]
    last_kw = float(np.nanmean(last)) if np.isfinite(last).any() else np.nan
    day = target - per_day * (leads // per_day + 1)
    week = target - 7 * per_day * (leads // (7 * per_day) + 1)
    known = values[:issue]

    def at(index: NDArray[np.int64]) -> NDArray[np.float64]:
        ok = (index >= 0) & (index < issue)
        out = np.full(index.shape, np.nan)
        out[ok] = known[index[ok]]
        return out

    step_h = 24 / per_day
    return np.column_stack(
        [calendar[target], leads * step_h, np.full(leads.shape, last_kw), at(day), at(week)]
    )


def training_rows(
    values: NDArray[np.float64], calendar: NDArray[np.float64], step: timedelta
) -> Rows:
    """Rows from the history ``values`` alone: targets are history intervals only."""
    n = len(values)
    per_day = round(timedelta(days=1) / step)
    horizon, stride = round(HORIZON / step), round(ISSUE_STRIDE / step)
    blocks, targets, indices = [], [], []
    for issue in range(7 * per_day, n, stride):
        leads = np.arange(min(horizon, n - issue), dtype=np.int64)
        blocks.append(_rows(values, calendar, issue, leads, per_day))
        targets.append(values[issue + leads])
        indices.append(issue + leads)
    if not blocks:
        return Rows(np.empty((0, len(FEATURES))), np.empty(0), np.empty(0, dtype=np.int64))
    target = np.concatenate(targets)
    keep = np.isfinite(target)
    return Rows(np.vstack(blocks)[keep], target[keep], np.concatenate(indices)[keep])


def _fit_predict(
    values: NDArray[np.float64],
    calendar: NDArray[np.float64],
    issue: int,
    leads: NDArray[np.int64],
    step: timedelta,
) -> dict[float, NDArray[np.float64]] | None:
    rows = training_rows(values[:issue], calendar[:issue], step)
    if len(rows.target_kw) < 2 * int(PARAMS["min_data_in_leaf"]):  # type: ignore[call-overload]
        return None
    per_day = round(timedelta(days=1) / step)
    query = _rows(values, calendar, issue, leads, per_day)
    data = lgb.Dataset(rows.features, rows.target_kw, free_raw_data=False)
    made = []
    for level in LEVELS:
        model = lgb.train({**PARAMS, "alpha": level}, data, num_boost_round=TREES)
        made.append(np.clip(np.asarray(model.predict(query), dtype=float), 0.0, None))
    ordered = np.sort(np.vstack(made), axis=0)  # quantiles must not cross
    return {level: ordered[i] for i, level in enumerate(LEVELS)}


def learned(program: Program, site: Site, history: History, grid: TimeGrid) -> QuantileForecast:
    """LightGBM quantile forecasts of ``grid`` from ``history`` (all before ``grid.start``);
    the profile for a quantity with less than ``MIN_HISTORY`` of it metered."""
    fallback = profile_forecast(program, site, grid)
    past = history.grid
    gap = max(round((grid.start - past.end) / past.step), 0)
    timeline = TimeGrid(past.start, past.n_steps + gap + grid.n_steps, past.step)
    calendar = _calendar(program, timeline)
    leads = np.arange(gap, gap + grid.n_steps, dtype=np.int64)
    result = []
    for values, default in ((history.load_kw, fallback.load_kw), (history.pv_kw, fallback.pv_kw)):
        enough = np.isfinite(values).sum() * past.step >= MIN_HISTORY
        padded = np.concatenate([values, np.full(gap + grid.n_steps, np.nan)])
        made = _fit_predict(padded, calendar, past.n_steps, leads, past.step) if enough else None
        result.append(made if made is not None else dict.fromkeys(LEVELS, default))
    return QuantileForecast(result[0], result[1])
