"""Baselines on a small recorded fortnight, by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from lightson.programs.baselines import BASELINES, HighestXofY, performance_kw

WINDOW = slice(15, 18)  # 15:00-18:00, hourly data
BEFORE = slice(11, 14)  # the adjustment hours
EVENT_DAY = date(2030, 7, 17)  # a Wednesday
FLAT = {  # weekday loads (kW) at a school, flat for easy sums
    date(2030, 7, 9): 100.0,  # Tue: more than 4 eligible weekdays back
    date(2030, 7, 10): 200.0,  # Wed: an earlier event day, never a baseline day
    date(2030, 7, 11): 70.0,
    date(2030, 7, 12): 40.0,
    date(2030, 7, 13): 300.0,  # Saturday
    date(2030, 7, 15): 60.0,
    date(2030, 7, 16): 50.0,
}


def loads(event_day_before_kw: float) -> dict[date, np.ndarray]:
    days = {d: np.full(24, kw) for d, kw in FLAT.items()}
    today = np.full(24, 40.0)  # the site delivers: 40 kW in the window
    today[BEFORE] = event_day_before_kw
    days[EVENT_DAY] = today
    return days


def test_highest_2_of_4_with_the_same_day_adjustment() -> None:
    strategy = HighestXofY(x=2, y=4)
    recorded = loads(75.0)
    eligible = strategy.eligible_days(recorded, EVENT_DAY, {date(2030, 7, 10)})
    assert eligible == [date(2030, 7, 16), date(2030, 7, 15), date(2030, 7, 12), date(2030, 7, 11)]
    # Highest two of 50, 60, 40, 70 kW: 70 and 60, so 65 kW; the day ran 75 kW before the
    # event, 10 kW above (within 20 % of 65 = 13 kW): 75 kW baseline, 75 - 40 = 35 kW.
    baseline = strategy.baseline_kw(recorded, EVENT_DAY, {date(2030, 7, 10)}, WINDOW, BEFORE)
    assert baseline[WINDOW] == pytest.approx([75.0] * 3)
    assert performance_kw(baseline, recorded[EVENT_DAY], WINDOW) == pytest.approx(35.0)


def test_the_adjustment_is_capped_and_can_be_left_out() -> None:
    recorded = loads(90.0)  # 25 kW above: capped at 13 kW, baseline 78 kW
    capped = HighestXofY(2, 4).baseline_kw(recorded, EVENT_DAY, {date(2030, 7, 10)}, WINDOW, BEFORE)
    assert performance_kw(capped, recorded[EVENT_DAY], WINDOW) == pytest.approx(38.0)
    plain = HighestXofY(2, 4, adjust=False).baseline_kw(
        recorded, EVENT_DAY, {date(2030, 7, 10)}, WINDOW, BEFORE
    )
    assert performance_kw(plain, recorded[EVENT_DAY], WINDOW) == pytest.approx(25.0)


def test_a_site_that_drew_more_than_its_baseline_performed_zero() -> None:
    baseline = np.full(24, 50.0)
    assert performance_kw(baseline, np.full(24, 80.0), WINDOW) == 0.0


def test_registry_and_refusals() -> None:
    assert set(BASELINES) >= {"highest-5-of-10", "highest-5-of-10-unadjusted"}
    default = BASELINES["highest-5-of-10"]()
    # With y = 10 the fortnight holds five eligible weekdays (07-09 counts now): all five.
    plain = BASELINES["highest-5-of-10-unadjusted"]()
    baseline = plain.baseline_kw(loads(40.0), EVENT_DAY, {date(2030, 7, 10)}, WINDOW)
    assert baseline[WINDOW] == pytest.approx([(100 + 70 + 60 + 50 + 40) / 5] * 3)
    assert default.x == 5 and default.y == 10
    with pytest.raises(ValueError, match="no eligible days"):
        default.baseline_kw({}, EVENT_DAY, set(), WINDOW)
    with pytest.raises(ValueError, match="x <= y"):
        HighestXofY(5, 3)
