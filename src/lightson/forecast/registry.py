"""Forecasters of a site's building load and PV, one registry (#16).

A forecaster reads the site's metered history (:class:`History`: load and PV on a regular
grid) and forecasts a plan's grid at quantile levels (10/50/90 %). It sees only the history
*before the plan's start*: :func:`forecast` cuts the history there before any forecaster
reads it, so no forecaster can learn from the period it forecasts.

- ``profile``: the site's typical-year profiles (what the platform did before #16); the same
  values at every level.
- ``recent-days``: seasonal naive. Each interval is forecast from the same time of day on the
  last ``days`` days of the same kind (working day, or weekend and public holiday, local
  time; ``physics.day_types``) before the plan: the median, and the empirical 10 and 90 %
  of those days.
- ``learned``: LightGBM quantile regression (:mod:`lightson.forecast.learned`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site
from lightson.domain.errors import ConfigError
from lightson.domain.time import TimeGrid
from lightson.forecast.history import LEVELS, History, QuantileForecast
from lightson.forecast.learned import learned
from lightson.forecast.profiles import profile_forecast
from lightson.physics.day_types import is_working_day

RECENT_DAYS = 7
DAY = timedelta(days=1)


Forecaster = Callable[[Program, Site, History, TimeGrid], QuantileForecast]

_REGISTRY: dict[str, Forecaster] = {}


def register(name: str, forecaster: Forecaster) -> None:
    """Add a forecaster; a name already taken is refused."""
    if name in _REGISTRY:
        raise ValueError(f"forecaster {name!r} is already registered")
    _REGISTRY[name] = forecaster


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Forecaster:
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise ConfigError.at("forecast", f"unknown forecaster {name!r}; one of: {valid}") from None


def forecast(
    name: str, program: Program, site: Site, history: History, grid: TimeGrid
) -> QuantileForecast:
    """Forecaster ``name``'s forecast of ``grid`` from the history before ``grid.start``."""
    return get(name)(program, site, history.before(grid.start), grid)


def choose(scores_mae_kw: Mapping[str, float], history_days: float, min_days: float) -> str:
    """The forecaster the live loop uses for a site: ``profile`` while the site has fewer
    than ``min_days`` days of metered history (or no scores), else the lowest load MAE."""
    if history_days < min_days or not scores_mae_kw:
        return "profile"
    return min(scores_mae_kw, key=lambda n: (scores_mae_kw[n], n))


def _same(values: NDArray[np.float64]) -> dict[float, NDArray[np.float64]]:
    return dict.fromkeys(LEVELS, values)


def profile(program: Program, site: Site, history: History, grid: TimeGrid) -> QuantileForecast:
    """The typical-year profiles, whatever the history."""
    made = profile_forecast(program, site, grid)
    return QuantileForecast(_same(made.load_kw), _same(made.pv_kw))


def recent_days(
    program: Program,
    site: Site,
    history: History,
    grid: TimeGrid,
    days: int = RECENT_DAYS,
) -> QuantileForecast:
    """Seasonal naive: each interval of ``grid`` from the same local time of day on the last
    ``days`` days of its kind (working day, or weekend and public holiday) in the history;
    the profile where the history holds none."""
    fallback = profile_forecast(program, site, grid)
    load = _recent(history.load_kw, history.grid, grid, program, days, fallback.load_kw)
    pv = _recent(history.pv_kw, history.grid, grid, program, days, fallback.pv_kw)
    return QuantileForecast(load, pv)


def _recent(
    values: NDArray[np.float64],
    past: TimeGrid,
    grid: TimeGrid,
    program: Program,
    days: int,
    fallback: NDArray[np.float64],
) -> dict[float, NDArray[np.float64]]:
    tz = program.timezone
    out = {level: fallback.copy() for level in LEVELS}
    for k, start in enumerate(grid.starts_utc()):
        local = start.astimezone(tz)
        working = is_working_day(local.date())
        found: list[float] = []
        back = 1
        while len(found) < days and back <= 7 * days:
            # the same wall-clock time ``back`` days earlier, by local calendar (DST-safe)
            then = (local - back * DAY).replace(tzinfo=None)
            instant = then.replace(tzinfo=tz).astimezone(UTC)
            back += 1
            if is_working_day(instant.astimezone(tz).date()) != working:
                continue
            index = int((instant - past.start) / past.step)
            if 0 <= index < past.n_steps and np.isfinite(values[index]):
                found.append(float(values[index]))
        if found:
            quantiles = np.quantile(np.asarray(found), LEVELS)
            for level, value in zip(LEVELS, quantiles, strict=True):
                out[level][k] = float(value)
    return out


def pinball_loss(actual: Sequence[float], predicted: Sequence[float], level: float) -> float:
    """Mean pinball (quantile) loss of ``predicted`` at ``level`` τ:
    ``mean(max(τ·(y − q), (τ − 1)·(y − q)))`` (kW)."""
    error = np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float)
    return float(np.mean(np.maximum(level * error, (level - 1) * error)))


def mean_absolute_error(actual: Sequence[float], predicted: Sequence[float]) -> float:
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float))))


register("profile", profile)
register("recent-days", recent_days)
register("learned", learned)
