from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.domain.errors import ConfigError
from lightson.domain.time import SimClock, TimeGrid, tmy_hour_index

NY = ZoneInfo("America/New_York")


def test_typical_year_rows_are_hour_beginning_in_local_standard_time() -> None:
    # Row 0 is 1 Jan 00:00-01:00 EST; in July, 00:00 EDT is 23:00 EST the day before.
    starts = [
        datetime(2026, 1, 1, 0, 30, tzinfo=NY),
        datetime(2026, 7, 15, 0, 0, tzinfo=NY),
        datetime(2026, 12, 31, 23, 59, tzinfo=NY),
    ]
    assert list(tmy_hour_index(starts)) == [0, (195 - 1) * 24 + 23, 8759]


def test_leap_years_read_28_february_for_29_february_and_keep_march_aligned() -> None:
    rows = tmy_hour_index(
        [datetime(2028, 2, 29, 12, tzinfo=UTC), datetime(2028, 3, 1, 12, tzinfo=UTC)]
    )
    feb28_row = 58 * 24 + 7  # 12:00 UTC = 07:00 EST
    assert list(rows) == [feb28_row, feb28_row + 24]


def test_grid_intervals_and_indices() -> None:
    grid = TimeGrid(datetime(2026, 7, 15, tzinfo=NY), 96)
    assert grid.step_h == 0.25
    assert grid.end == datetime(2026, 7, 16, tzinfo=NY)
    assert grid.first_index_from(datetime(2026, 7, 15, 15, 0, tzinfo=NY)) == 60
    assert grid.first_index_from(datetime(2026, 7, 15, 15, 1, tzinfo=NY)) == 61
    assert grid.index_of(datetime(2026, 7, 15, 15, 14, tzinfo=NY)) == 60


def test_grids_refuse_naive_times_and_uneven_steps() -> None:
    with pytest.raises(ConfigError, match="start: must carry a timezone"):
        TimeGrid(datetime(2026, 7, 15), 4)
    with pytest.raises(ConfigError, match="step"):
        TimeGrid(datetime(2026, 7, 15, tzinfo=UTC), 4, timedelta(minutes=7))


def test_sim_clock_moves_only_forward_when_told() -> None:
    clock = SimClock(datetime(2026, 7, 15, tzinfo=UTC))
    assert clock.advance(timedelta(minutes=15)) == datetime(2026, 7, 15, 0, 15, tzinfo=UTC)
    assert clock.now() == datetime(2026, 7, 15, 0, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(timedelta(minutes=-1))


def test_a_grid_counts_real_hours_across_daylight_saving() -> None:
    grid = TimeGrid(datetime(2026, 3, 8, tzinfo=NY), 96)  # a 23-hour local day
    assert grid.end == datetime(2026, 3, 9, 1, 0, tzinfo=NY)
    assert grid.first_index_from(datetime(2026, 3, 8, 15, 0, tzinfo=NY)) == 56  # 14 real hours
    assert grid.start.utcoffset() == timedelta(0)
    autumn = TimeGrid(datetime(2026, 11, 1, tzinfo=NY), 100)  # a 25-hour local day
    assert autumn.starts_local(NY)[-1] == datetime(2026, 11, 1, 23, 45, tzinfo=NY)


# Clock changes of 2026 (UTC) in zones with a one-hour and a half-hour change.
CLOCK_CHANGES = [
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),
    ("UTC", datetime(2026, 7, 1, tzinfo=UTC)),
]


@settings(max_examples=300, deadline=None)
@given(
    change=st.sampled_from(CLOCK_CHANGES),
    before_min=st.integers(min_value=-3 * 24 * 60, max_value=9 * 24 * 60),
    n_steps=st.integers(min_value=1, max_value=800),
    minutes=st.sampled_from([5, 15, 60]),
)
def test_local_starts_are_each_instant_in_the_zone(
    change: tuple[str, datetime], before_min: int, n_steps: int, minutes: int
) -> None:
    """The shortcut for grids without a clock change in them gives what converting each
    instant gives, wall clock and offset alike, also when a change falls inside the grid."""
    zone, instant = change
    tz = ZoneInfo(zone)
    grid = TimeGrid(instant - timedelta(minutes=before_min), n_steps, timedelta(minutes=minutes))
    fast = grid.starts_local(tz)
    each = [s.astimezone(tz) for s in grid.starts_utc()]
    assert [(s.replace(tzinfo=None), s.utcoffset()) for s in fast] == [
        (s.replace(tzinfo=None), s.utcoffset()) for s in each
    ]
