from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lightson.domain.catalog import DR_PROGRAMS, VEHICLE_MODELS
from lightson.domain.errors import DuplicateNameError, UnknownNameError
from lightson.domain.registry import Registry
from lightson.domain.tariffs import Tariff, TouPeriod

NY = ZoneInfo("America/New_York")


def test_a_registry_refuses_duplicates_and_names_the_choices() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("a", 1)
    registry.register("b", 2)
    with pytest.raises(DuplicateNameError, match="duplicate widget 'a'"):
        registry.register("a", 3)
    with pytest.raises(UnknownNameError) as caught:
        registry.lookup("c", "x.widget")
    assert str(caught.value) == "x.widget: unknown widget 'c'; known: a, b"
    assert not caught.value.retryable


def test_catalog_holds_the_program_vehicles_with_domain_figures() -> None:
    assert VEHICLE_MODELS["ford-f150-lightning-er"].battery_kwh == 131.0
    assert VEHICLE_MODELS["thomas-jouley-226"].max_discharge_kw == 60.0
    assert VEHICLE_MODELS["thomas-jouley-226"].kwh_per_mile == 1.21
    assert not VEHICLE_MODELS["generic-ev-60"].v2x_capable


def test_connected_solutions_value_per_event_kwh() -> None:
    # $275 per kW-summer over 45 expected events of 3 h: 275/135 $ per kWh delivered.
    assert DR_PROGRAMS["cs-residential-battery"].value_usd_per_kwh == pytest.approx(275 / 135)


def test_time_of_use_periods_replace_the_base_price() -> None:
    peak = TouPeriod(frozenset({6, 7, 8, 9}), frozenset(range(5)), 16, 21, 0.45)
    tariff = Tariff("tou", 0.25, tou_periods=(peak,))
    starts = [
        datetime(2026, 7, 15, 15, 59, tzinfo=NY),  # Wednesday before the window
        datetime(2026, 7, 15, 16, 0, tzinfo=NY),
        datetime(2026, 7, 18, 17, 0, tzinfo=NY),  # Saturday
        datetime(2026, 12, 16, 17, 0, tzinfo=NY),  # December
    ]
    assert list(tariff.import_price_usd_per_kwh(starts)) == [0.25, 0.45, 0.25, 0.25]
