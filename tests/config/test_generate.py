"""The generated ma-2026 program has the published shape and is plain, valid configuration."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from lightson.config import parse_program
from lightson.config.generate import ma_2026_program, program_yaml, school_days_off


@pytest.fixture(scope="module")
def program():  # type: ignore[no-untyped-def]
    return parse_program(program_yaml(ma_2026_program(seed=7), "test"))


def test_the_program_has_the_shape_of_the_massachusetts_demonstration(program) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(s.kind.value for s in program.sites)
    assert kinds == {"home": 55, "business": 4, "school": 3}
    business_chargers = sum(len(s.chargers) for s in program.sites if s.kind.value == "business")
    buses = [v for s in program.sites if s.kind.value == "school" for v in s.vehicles]
    assert business_chargers == 30 and len(buses) == 15
    assert {v.model for v in buses} <= {
        "thomas-jouley-226",
        "thomas-jouley-244",
        "bluebird-vision-196",
    }
    assert {s.utility for s in program.sites} == {
        "national-grid",
        "eversource",
        "unitil",
        "municipal-light-plant",
    }
    for site in program.sites:
        if site.utility == "municipal-light-plant":
            assert site.enrollments == (), "municipal light plants are outside ConnectedSolutions"


def test_the_same_seed_gives_the_same_file_and_another_seed_another() -> None:
    assert program_yaml(ma_2026_program(seed=7), "x") == program_yaml(ma_2026_program(seed=7), "x")
    assert program_yaml(ma_2026_program(seed=7), "x") != program_yaml(ma_2026_program(seed=8), "x")


def test_home_trips_come_back_when_home_chargers_see_arrivals(program) -> None:  # type: ignore[no-untyped-def]
    returns = [
        v.trips[0].return_local for s in program.sites if s.kind.value == "home" for v in s.vehicles
    ]
    assert all(r.hour >= 14 for r in returns)  # weekday commutes end in the afternoon or evening
    assert 15 <= sum(r.hour for r in returns) / len(returns) <= 21


def test_buses_skip_holidays_vacations_and_summer(program) -> None:  # type: ignore[no-untyped-def]
    school = next(s for s in program.sites if s.kind.value == "school")
    morning = school.vehicles[0].trips[0]
    assert not morning.runs_on(date(2026, 4, 20))  # Patriots' Day, April vacation
    assert not morning.runs_on(date(2026, 7, 15))  # summer
    assert not morning.runs_on(date(2026, 3, 14))  # Saturday
    assert morning.runs_on(date(2026, 3, 11))
    assert date(2026, 11, 26) in school_days_off(2026)
    assert all(d.weekday() < 5 for d in school_days_off(2026))
