"""The forecaster registry on hand-made histories (#16)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError
from lightson.domain.time import TimeGrid
from lightson.forecast import learned as learned_module
from lightson.forecast.history import History
from lightson.forecast.registry import (
    choose,
    forecast,
    mean_absolute_error,
    names,
    pinball_loss,
    register,
)

HOUR = timedelta(hours=1)


def _history(program: Program, days: int, value) -> History:  # type: ignore[no-untyped-def]
    """Hourly history from Monday 2026-07-06 00:00 local; ``value(day, hour)``."""
    start = datetime(2026, 7, 6, tzinfo=program.timezone)
    grid = TimeGrid(start, days * 24, HOUR)
    load = np.array([value(k // 24, k % 24) for k in range(days * 24)], dtype=float)
    return History(grid, load, np.zeros(days * 24))


def test_registry_names_and_refusals() -> None:
    assert {"profile", "recent-days", "learned"} <= set(names())
    with pytest.raises(ValueError, match="already registered"):
        register("profile", lambda *a: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="learned, profile, recent-days"):
        forecast("oracle", None, None, None, None)  # type: ignore[arg-type]


def test_recent_days_reproduces_a_hand_computed_day(example_program: Program) -> None:
    site = example_program.sites[0]
    history = _history(example_program, 14, lambda day, hour: 10 * day + hour)
    grid = TimeGrid(history.grid.end, 24, HOUR)  # Monday 2026-07-20, local midnight on
    from lightson.forecast.registry import recent_days

    made = recent_days(example_program, site, history, grid, days=2)
    # the two latest weekdays before Monday the 20th: Friday (day 11) and Thursday (day 10)
    hours = np.arange(24)
    assert made.load_kw[0.5] == pytest.approx(105 + hours)
    assert made.load_kw[0.1] == pytest.approx(101 + hours)  # linear between 100+h and 110+h
    assert made.load_kw[0.9] == pytest.approx(109 + hours)
    # a Saturday from the two weekends: days 12 (Sat) and 6 (Sun) are the latest weekend days
    saturday = TimeGrid(history.grid.end - 2 * timedelta(days=1), 24, HOUR)
    cut = History(
        TimeGrid(history.grid.start, 12 * 24, HOUR), history.load_kw[:288], history.pv_kw[:288]
    )
    weekend = recent_days(example_program, site, cut, saturday, days=2)
    assert weekend.load_kw[0.5] == pytest.approx(10 * (6 + 5) / 2 + hours)


def test_pinball_loss_and_mae_hand_computed() -> None:
    # errors y - q: -2 and 5
    assert pinball_loss([10, 20], [12, 15], 0.9) == pytest.approx((0.2 + 4.5) / 2)
    assert pinball_loss([10, 20], [12, 15], 0.1) == pytest.approx((1.8 + 0.5) / 2)
    assert pinball_loss([10, 20], [12, 15], 0.5) == pytest.approx((1 + 2.5) / 2)
    assert mean_absolute_error([10, 20], [12, 15]) == pytest.approx(3.5)


def _pattern(day: int, hour: int) -> float:
    """A building of its own: 40 kW, 90 kW from 18:00 to 22:00 on weekdays, and a small
    deterministic wobble; weekends 25 kW."""
    wobble = 3 * np.sin(day * 1.7 + hour)
    if day % 7 >= 5:
        return 25 + wobble
    return (90 if 18 <= hour < 22 else 40) + wobble


def test_learned_beats_profile_on_a_known_pattern(example_program: Program) -> None:
    site = example_program.sites[0]
    history = _history(example_program, 35, _pattern)
    grid = TimeGrid(history.grid.end, 36, HOUR)
    truth = [_pattern(35 + k // 24, k % 24) for k in range(36)]
    learned = forecast("learned", example_program, site, history, grid)
    profile = forecast("profile", example_program, site, history, grid)
    learned_mae = mean_absolute_error(truth, learned.load_kw[0.5])
    profile_mae = mean_absolute_error(truth, profile.load_kw[0.5])
    assert learned_mae < 8 < profile_mae
    low, mid, high = (learned.load_kw[q] for q in (0.1, 0.5, 0.9))
    assert np.all(low <= mid) and np.all(mid <= high)


def test_learned_uses_no_data_at_or_after_the_plan_start(example_program: Program) -> None:
    site = example_program.sites[0]
    history = _history(example_program, 21, _pattern)
    start = history.grid.start + 14 * 24 * HOUR  # the plan starts inside the history
    grid = TimeGrid(start, 36, HOUR)
    poisoned = history.load_kw.copy()
    poisoned[14 * 24 :] = 1e6  # what follows the plan's start must not be read
    leaky = History(history.grid, poisoned, history.pv_kw)
    made = forecast("learned", example_program, site, leaky, grid)
    clean = forecast("learned", example_program, site, history.before(start), grid)
    assert np.array_equal(made.load_kw[0.5], clean.load_kw[0.5])
    assert made.load_kw[0.9].max() < 200
    # the training rows: every target, and so every row, lies before the cutoff
    calendar = learned_module._calendar(example_program, history.grid)
    rows = learned_module.training_rows(poisoned[: 14 * 24], calendar[: 14 * 24], HOUR)
    assert len(rows.target_kw) > 0
    assert rows.target_index.max() < 14 * 24
    assert rows.target_kw.max() < 1e6


def test_short_history_falls_back_to_the_profile(example_program: Program) -> None:
    site = example_program.sites[0]
    scores = {"learned": 1.0, "recent-days": 2.0, "profile": 3.0}
    assert choose(scores, history_days=3, min_days=14) == "profile"
    assert choose(scores, history_days=14, min_days=14) == "learned"
    assert choose({}, history_days=100, min_days=14) == "profile"
    history = _history(example_program, 5, _pattern)  # under learned's eight days
    grid = TimeGrid(history.grid.end, 24, HOUR)
    learned = forecast("learned", example_program, site, history, grid)
    profile = forecast("profile", example_program, site, history, grid)
    assert np.array_equal(learned.load_kw[0.5], profile.load_kw[0.5])
    assert history.days == pytest.approx(5)


def test_scores_on_held_out_weeks(example_program: Program) -> None:
    from lightson.forecast.scoring import held_out_midnights, score

    site = example_program.sites[0]
    history = _history(example_program, 28, _pattern)
    midnights = held_out_midnights(example_program, history, weeks=1)
    assert len(midnights) == 7 and midnights[0] == history.grid.start + 21 * 24 * HOUR
    made = {s.forecaster: s for s in score(example_program, site, history, weeks=1)}
    assert set(made) == {"profile", "recent-days", "learned"}
    assert all(s.days == 7 for s in made.values())
    assert made["recent-days"].mae_kw < made["profile"].mae_kw
    assert made["learned"].mae_kw < made["profile"].mae_kw
    # a point forecast's pinball loss at 50 % is half its MAE
    assert made["profile"].pinball_kw[0.5] == pytest.approx(made["profile"].mae_kw / 2)


@settings(max_examples=20, deadline=None)
@given(
    values=st.lists(st.floats(0, 500, allow_nan=False), min_size=14 * 24, max_size=14 * 24),
    days=st.integers(1, 7),
)
def test_recent_days_stays_within_what_was_metered(
    example_program: Program, values: list[float], days: int
) -> None:
    site = example_program.sites[0]
    history = _history(example_program, 14, lambda day, hour: values[24 * day + hour])
    from lightson.forecast.registry import recent_days

    made = recent_days(example_program, site, history, TimeGrid(history.grid.end, 36, HOUR), days)
    low, mid, high = (made.load_kw[q] for q in (0.1, 0.5, 0.9))
    assert np.all(low <= mid) and np.all(mid <= high)
    assert low.min() >= min(values) and high.max() <= max(values)
