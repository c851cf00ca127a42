"""Forecasters scored on held-out weeks of a site's history (#16).

The last ``weeks`` weeks of the history are held out. At each local midnight in them every
forecaster forecasts the next day from the history before that midnight only (so the model
is retrained on what it would have had), and the day's metered load is the truth. Scores
over all held-out days: the mean absolute error of the median and the mean pinball loss at
each level of ``LEVELS`` (kW).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import numpy as np

from lightson.domain.assets import Program, Site
from lightson.domain.time import TimeGrid
from lightson.forecast.history import LEVELS, History
from lightson.forecast.registry import forecast, mean_absolute_error, names, pinball_loss


@dataclass(frozen=True)
class Score:
    """One forecaster's load forecast scores (kW) over ``days`` held-out days."""

    forecaster: str
    days: int
    mae_kw: float
    pinball_kw: dict[float, float]


def held_out_midnights(program: Program, history: History, weeks: int) -> list[datetime]:
    """Local midnights from ``weeks`` weeks before the history's end, each with a whole day
    of history after it."""
    tz = program.timezone
    end = history.grid.end
    first = (end - timedelta(weeks=weeks)).astimezone(tz)
    day = first.date() if first.time() == time(0) else first.date() + timedelta(days=1)
    midnights: list[datetime] = []
    while True:
        midnight = datetime.combine(day, time(0), tzinfo=tz)
        if midnight + timedelta(days=1) > end:
            return midnights
        midnights.append(midnight.astimezone(UTC))
        day += timedelta(days=1)


def score(
    program: Program,
    site: Site,
    history: History,
    weeks: int = 2,
    forecasters: Sequence[str] | None = None,
) -> list[Score]:
    """Each forecaster's scores on the held-out weeks of ``history`` (the load only)."""
    step = history.grid.step
    per_day = round(timedelta(days=1) / step)
    scores = []
    for name in forecasters or names():
        actual, predicted = [], {level: [] for level in LEVELS}  # type: ignore[var-annotated]
        days = 0
        for midnight in held_out_midnights(program, history, weeks):
            index = round((midnight - history.grid.start) / step)
            truth = history.load_kw[index : index + per_day]
            if not np.isfinite(truth).any():
                continue
            made = forecast(name, program, site, history, TimeGrid(midnight, per_day, step))
            ok = np.isfinite(truth)
            actual.extend(truth[ok])
            for level in LEVELS:
                predicted[level].extend(made.load_kw[level][ok])
            days += 1
        if not actual:
            continue
        scores.append(
            Score(
                name,
                days,
                mean_absolute_error(actual, predicted[0.5]),
                {level: pinball_loss(actual, predicted[level], level) for level in LEVELS},
            )
        )
    return scores
