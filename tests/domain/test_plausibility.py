"""The plausibility rules: anything finite and in range passes, anything else fails naming the
field and the rule."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lightson.domain.plausibility import (
    MAX_AGE,
    MAX_AHEAD,
    MAX_REGISTER_KWH,
    check_energy_kwh,
    check_power_kw,
    check_soc,
    check_time,
    max_power_kw,
)

NOW = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
FIELD = "meterValue[0].sampledValue[2].value"
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@given(st.floats(min_value=0.0, max_value=1.0))
def test_a_soc_in_range_passes(soc: float) -> None:
    assert check_soc(FIELD, soc) is None


@given(ANY_FLOAT.filter(lambda x: not 0.0 <= x <= 1.0))
def test_a_soc_out_of_range_or_not_finite_fails_naming_the_field(soc: float) -> None:
    found = check_soc(FIELD, soc)
    assert found is not None
    assert found.field == FIELD
    assert found.reason == ("soc-range" if math.isfinite(soc) else "not-finite")


def test_soc_150_and_minus_20_percent_fail() -> None:
    assert check_soc("soc", 1.5) is not None
    assert check_soc("soc", -0.2) is not None


@given(
    st.floats(min_value=0.1, max_value=5000.0),
    st.floats(min_value=-1.0, max_value=1.0),
)
def test_power_within_the_multiple_of_the_rating_passes(rating_kw: float, share: float) -> None:
    assert check_power_kw(FIELD, share * 1.5 * rating_kw, rating_kw) is None


@given(st.floats(min_value=0.1, max_value=5000.0), ANY_FLOAT)
def test_power_beyond_the_multiple_or_not_finite_fails(rating_kw: float, power_kw: float) -> None:
    found = check_power_kw(FIELD, power_kw, rating_kw)
    if math.isfinite(power_kw) and abs(power_kw) <= 1.5 * rating_kw:
        assert found is None
    else:
        assert found is not None
        assert found.field == FIELD
        assert found.reason in {"power-range", "not-finite"}


def test_power_examples_from_the_field() -> None:
    assert check_power_kw("p", 1e305, 11.0) is not None  # 1e308 W
    assert check_power_kw("p", 7e6, 60.0) is not None  # 7 W with multiplier 9
    assert check_power_kw("p", 90.0, 60.0) is None  # 1.5 x 60 kW
    assert check_power_kw("p", -90.1, 60.0) is not None
    assert max_power_kw(0.0) == 4000.0  # no rating: the largest charger standard's, and more


@given(ANY_FLOAT)
def test_energy_registers_are_finite_and_not_negative(energy_kwh: float) -> None:
    found = check_energy_kwh(FIELD, energy_kwh)
    good = math.isfinite(energy_kwh) and 0.0 <= energy_kwh <= MAX_REGISTER_KWH
    assert (found is None) == good


@given(st.timedeltas(min_value=-2 * MAX_AGE, max_value=2 * MAX_AHEAD))
def test_times_within_the_window_pass_and_others_fail(offset: timedelta) -> None:
    found = check_time(FIELD, NOW + offset, NOW)
    if -MAX_AGE <= offset <= MAX_AHEAD:
        assert found is None
    else:
        assert found is not None
        assert found.reason == ("timestamp-future" if offset > MAX_AHEAD else "timestamp-stale")


def test_a_time_without_an_offset_fails() -> None:
    found = check_time("timestamp", datetime(2026, 7, 15, 19, 0), NOW)
    assert found is not None
    assert found.reason == "timestamp-offset"
    assert "timestamp: 2026-07-15T19:00:00 breaks timestamp-offset" in found.message
