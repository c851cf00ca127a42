"""The building profile learned from metered intervals: month × weekday/weekend × hour means
in local standard time, laid on a typical year that starts on a Sunday, empty bins from the
nearest month; hand-made histories with hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.forecast.building_profile import hourly_energy_kwh, learned_profile
from lightson.physics.profiles import profile_at

HOUR = timedelta(hours=1)


def est(*args: int) -> datetime:
    """A local standard time (UTC−5) as UTC."""
    return datetime(*args, tzinfo=UTC) + timedelta(hours=5)


def day_of(start: datetime, kw_by_hour: list[float]) -> list[tuple[datetime, timedelta, float]]:
    return [(start + h * HOUR, HOUR, kw) for h, kw in enumerate(kw_by_hour)]


def test_weekday_and_weekend_of_one_july_week_fill_the_year() -> None:
    """Monday 14 July 2025: hour h at h kW; Saturday 19 July: 10 kW. Every month borrows
    July; a Wednesday in January reads the Monday, a Sunday the Saturday."""
    history = day_of(est(2025, 7, 14), [float(h) for h in range(24)])
    history += day_of(est(2025, 7, 19), [10.0] * 24)
    learned = learned_profile(history, "home")
    assert learned.months_with_data == [7]
    assert learned.borrowed_bins == 576 - 48
    assert learned.mean_kw[6, 0, 5] == 5.0 and learned.mean_kw[6, 1, 5] == 10.0
    wednesday = [est(2026, 1, 14, h) for h in range(24)]
    sunday = [est(2026, 1, 18, h) for h in range(24)]
    values = learned.profile.values
    assert profile_at(values, wednesday, learned.profile.first_weekday).tolist() == list(
        map(float, range(24))
    )
    assert profile_at(values, sunday, learned.profile.first_weekday).tolist() == [10.0] * 24
    # 1 January of the profile's calendar is a Sunday (the OpenEI/DOE calendar): 10 kW
    assert values[:24].tolist() == [10.0] * 24 and values[24:48].tolist() == list(
        map(float, range(24))
    )


def test_bins_average_days_and_a_part_covered_hour_reads_its_own_power() -> None:
    """Two Tuesdays of March at 1 and 3 kW at 08:00: 2 kW. An hour with one quarter of
    1 kWh metered (the rest missing) is 4 kW, not 1."""
    history = [
        (est(2025, 3, 4, 8), HOUR, 1.0),
        (est(2025, 3, 11, 8), HOUR, 3.0),
        (est(2025, 3, 18, 9, 30), timedelta(minutes=15), 1.0),
    ]
    learned = learned_profile(history, "x")
    assert learned.mean_kw[2, 0, 8] == 2.0
    assert learned.mean_kw[2, 0, 9] == 4.0
    assert learned.hours[2, 0, 8] == 2


def test_an_interval_across_hours_is_spread_by_time() -> None:
    """30 minutes of 3 kWh from 07:45 EST: 15 minutes in each of the hours 07:00 and 08:00,
    so 1.5 kWh over 0.25 h in each."""
    hours = hourly_energy_kwh([(est(2025, 3, 4, 7, 45), timedelta(minutes=30), 3.0)])
    start = datetime(2025, 3, 4, 7)
    assert hours == {start: (1.5, 0.25), start + HOUR: (1.5, 0.25)}


def test_local_daylight_time_is_binned_in_standard_time() -> None:
    """17:00 EDT on a July Monday is 16:00 EST: the profile (standard time) has it at 16."""
    at = datetime(2025, 7, 14, 21, tzinfo=UTC)  # 17:00 EDT
    learned = learned_profile([(at, HOUR, 2.0)], "x")
    assert learned.mean_kw[6, 0, 16] == 2.0
    assert np.isnan(learned.mean_kw[6, 0, 17])


def test_empty_bins_borrow_the_nearest_month_the_earlier_on_a_tie() -> None:
    """Weekdays of March at 1 kW and of September at 3 kW, no weekend: June is 3 months from
    both (March, the earlier, wins), July is nearer September, December is 3 from both
    (September, 3 months before it, is the earlier); weekends borrow weekdays."""
    history = day_of(est(2025, 3, 4), [1.0] * 24) + day_of(est(2025, 9, 2), [3.0] * 24)
    values = learned_profile(history, "x").profile.values

    def at(month: int, day: int) -> float:  # day of the profile's 2023 calendar, 12:00
        return float(values[(datetime(2023, month, day) - datetime(2023, 1, 1)).days * 24 + 12])

    assert at(6, 7) == 1.0  # Wednesday 7 June 2023
    assert at(7, 5) == 3.0
    assert at(12, 6) == 3.0
    assert at(1, 4) == 1.0  # January: 2 months from March, 4 from September
    assert at(3, 4) == 1.0  # a Saturday in March: the weekday's


def test_no_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="no metered interval"):
        learned_profile([], "x")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=96),
    st.integers(min_value=0, max_value=300),
)
def test_every_value_lies_between_the_smallest_and_largest_power_metered(
    kw: list[float], day: int
) -> None:
    """Whatever the history, every profile value is one of the metered hours' means:
    between the smallest and largest power metered."""
    start = est(2025, 1, 1) + timedelta(days=day)
    history = [
        (start + q * timedelta(minutes=15), timedelta(minutes=15), v / 4) for q, v in enumerate(kw)
    ]
    values = learned_profile(history, "x").profile.values
    assert values.shape == (8760,)
    assert min(kw) - 1e-9 <= values.min() and values.max() <= max(kw) + 1e-9
