"""Public holidays as days off (#16): the profile, recent-days and learned forecasters read
a Massachusetts holiday like a Sunday."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from lightson.domain.assets import Program
from lightson.domain.time import LOCAL_STANDARD, TimeGrid
from lightson.forecast import learned as learned_module
from lightson.forecast.history import History
from lightson.forecast.registry import forecast, recent_days
from lightson.physics.day_types import is_holiday, is_working_day, load_weekday
from lightson.physics.profiles import building_load_kw

HOUR = timedelta(hours=1)
JUNETEENTH = date(2026, 6, 19)  # a Friday


def test_the_calendar_holds_massachusetts_holidays() -> None:
    assert is_holiday(JUNETEENTH) and is_holiday(date(2026, 4, 20))  # Patriots' Day
    assert load_weekday(JUNETEENTH) == 6 and not is_working_day(JUNETEENTH)
    assert load_weekday(date(2026, 6, 18)) == 3 and is_working_day(date(2026, 6, 18))


def test_the_profile_reads_a_holiday_from_a_sunday_and_a_working_day_from_no_holiday(
    example_program: Program,
) -> None:
    building = next(
        s.building for s in example_program.sites if s.building.load_profile.first_weekday == 6
    )
    values, scale = building.load_profile.values, building.scale

    def at(day: date, hour: int) -> float:
        instant = datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_STANDARD)
        return float(building_load_kw(building, [instant])[0])

    # 2026-06-19 is day 169 of the year; the weekday match reads Friday 2006-06-16 (day
    # 166; the profile's 1 January 2006 is a Sunday) and the holiday its Sunday, day 168.
    assert at(JUNETEENTH, 12) == pytest.approx(scale * values[168 * 24 + 12])
    assert at(date(2026, 6, 18), 12) == pytest.approx(scale * values[165 * 24 + 12])
    # Tuesday 2026-07-07 (day 187) would read the profile's 4 July 2006 (day 184, a
    # Tuesday and the profile's own holiday): it reads the Tuesday before, day 177.
    assert at(date(2026, 7, 7), 12) == pytest.approx(scale * values[177 * 24 + 12])


def _by_kind(program: Program, first: date, days: int, working_kw: float, off_kw: float):  # type: ignore[no-untyped-def]
    """Hourly history from local midnight of ``first``: flat by day kind (a holiday off)."""
    start = datetime(first.year, first.month, first.day, tzinfo=program.timezone)
    grid = TimeGrid(start, days * 24, HOUR)
    load = np.array(
        [
            (working_kw if is_working_day(first + timedelta(days=k // 24)) else off_kw)
            + (k % 24) / 10
            for k in range(days * 24)
        ]
    )
    return History(grid, load, np.zeros(days * 24))


def test_recent_days_forecasts_a_holiday_from_the_weekends_and_skips_it_after(
    example_program: Program,
) -> None:
    site = example_program.sites[0]
    hours = np.arange(24) / 10
    # history Monday 2026-06-01 to Thursday 06-18: the Friday holiday reads the weekends
    history = _by_kind(example_program, date(2026, 6, 1), 18, 100.0, 20.0)
    holiday = recent_days(example_program, site, history, TimeGrid(history.grid.end, 24, HOUR))
    assert holiday.load_kw[0.5] == pytest.approx(20.0 + hours)
    # history to Sunday 06-21, the holiday in it: Monday's last 7 working days are
    # 06-18 … 06-10 without the 19th; counted as a working day, the 20 kW holiday would
    # pull the 10 % quantile to 20 + 0.6·80 = 68 kW.
    longer = _by_kind(example_program, date(2026, 6, 1), 21, 100.0, 20.0)
    monday = recent_days(example_program, site, longer, TimeGrid(longer.grid.end, 24, HOUR))
    assert monday.load_kw[0.1] == pytest.approx(100.0 + hours)


def test_learned_forecasts_a_holiday_it_never_saw_like_a_sunday(
    example_program: Program,
) -> None:
    site = example_program.sites[0]
    # Tuesday 2026-05-26 to Thursday 06-18, no holiday in them (Memorial Day is 05-25);
    # working days 100 kW, weekends 20 kW
    history = _by_kind(example_program, date(2026, 5, 26), 24, 100.0, 20.0)
    assert history.grid.end == datetime(2026, 6, 19, tzinfo=example_program.timezone)
    made = forecast("learned", example_program, site, history, TimeGrid(history.grid.end, 24, HOUR))
    # the day's mean: the weekends' 21.2 kW, not the working days' 101.2 (the lag on
    # Thursday's 100 kW pulls it up a little: within a fifth of the way)
    assert 21.2 - 5.0 < float(np.mean(made.load_kw[0.5])) < 21.2 + 0.2 * 80
    # and the training rows of a history cut at the plan's start end before it
    calendar = learned_module._calendar(example_program, history.grid)
    rows = learned_module.training_rows(history.load_kw, calendar, HOUR)
    assert rows.target_index.max() < history.grid.n_steps
    assert learned_module.FEATURES.index("holiday") == 2
    assert rows.features[:, 2].max() == 0.0  # no holiday in this history
