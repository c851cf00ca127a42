"""Outage survival: hand-computed backup hours and the year-long analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lightson.domain.assets import LoadTier
from lightson.resilience.analysis import outage_survival
from lightson.resilience.survival import BackupVehicle, hours_carried, survival_probability


def test_a_bus_at_80_percent_carries_45_kw_for_a_computable_time() -> None:
    # 226 kWh at 80 %, floor = 5 % usable minimum + a 15 kWh route, η_d = 0.92:
    # (0.80 - 0.05) * 226 - 15 = 154.5 kWh in the battery, 142.14 kWh at the charger,
    # / 45 kW = 3.1587 hours. The 60 kW charger covers the 45 kW.
    bus = BackupVehicle(deliverable_kwh=((0.80 - 0.05) * 226 - 15.0) * 0.92, max_discharge_kw=60.0)
    hours = hours_carried(np.full(4 * 72, 45.0), np.zeros(4 * 72), [bus], 0.25)
    assert hours == pytest.approx(142.14 / 45.0)


def test_a_load_above_the_charger_limit_is_not_carried_at_all() -> None:
    bus = BackupVehicle(deliverable_kwh=200.0, max_discharge_kw=60.0)
    assert hours_carried(np.full(8, 75.0), np.zeros(8), [bus], 0.25) == 0.0
    # With 20 kW of PV the 75 kW load needs 55 kW: carried until energy runs out (200/55 h),
    # or to the end of the 2-hour window here.
    assert hours_carried(np.full(8, 75.0), np.full(8, 20.0), [bus], 0.25) == 2.0


def test_survival_probability_counts_starts_lasting_long_enough() -> None:
    assert survival_probability(np.array([2.0, 5.0, 9.0, 72.0]), [4, 8, 24, 72]) == {
        4: 0.75,
        8: 0.5,
        24: 0.25,
        72: 0.25,
    }


def test_the_year_long_analysis_uses_the_vehicles_present_at_each_start(example_program) -> None:  # type: ignore[no-untyped-def]
    school = example_program.site("school-beverly")  # critical 20 %, essential 50 %
    n = 4 * 24 * 4  # four days of 15-minute steps
    load = np.full(n, 100.0)
    energy = np.full((2, n), 150.0)
    plugged = np.ones((2, n), dtype=bool)
    plugged[:, 4 * 24 : 4 * 48] = False  # both buses away on day 2
    result = outage_survival(
        school,
        datetime(2026, 3, 2, tzinfo=UTC),
        timedelta(minutes=15),
        load,
        np.zeros(n),
        energy,
        plugged,
        np.zeros((2, n)),
        max_hours=24.0,
    )
    assert len(result.starts) == 3 * 24 + 1
    deliverable_kwh = (2 * 150 - 0.05 * 226 - 0.05 * 196) * 0.92  # above each usable minimum
    critical = result.hours[LoadTier.CRITICAL]
    assert critical[0] == pytest.approx(deliverable_kwh / 20.0)  # 20 % of 100 kW
    assert critical[30] == 0.0  # day 2: nobody home
    assert result.hours[LoadTier.FULL][0] == pytest.approx(deliverable_kwh / 100.0)
    assert result.probability[LoadTier.CRITICAL][24.0] == pytest.approx(np.mean(critical >= 24.0))


def test_a_tier_that_runs_short_of_power_and_energy_at_once_gets_no_partial_credit() -> None:
    bus = BackupVehicle(deliverable_kwh=12.0, max_discharge_kw=60.0)
    need = np.array([10.0, 10.0, 10.0, 10.0, 100.0, 100.0])
    assert hours_carried(need, np.zeros(6), [bus], 0.25) == 1.0
