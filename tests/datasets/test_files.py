"""The vendored data files read as their provenance says."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from lightson.datasets import LOAD_PROFILES, bundled_load_profile, bundled_weather
from lightson.domain.errors import UnknownNameError


def test_every_vendored_file_matches_its_provenance_checksum() -> None:
    data = resources.files("lightson") / "data"
    provenance = (data / "PROVENANCE.md").read_text()
    rows = re.findall(r"^([0-9a-f]{64})  \./(\S.*)$", provenance, flags=re.MULTILINE)
    assert len(rows) == 20
    for digest, relative in rows:
        assert hashlib.sha256((data / relative).read_bytes()).hexdigest() == digest, relative


@pytest.mark.parametrize(
    ("name", "annual_kwh", "peak_kw"),
    [
        ("doe-primary-school", 838_832, 331.2),
        ("doe-small-office", 64_198, 18.3),
        ("residential-base", 9_011, 2.6),
    ],
)
def test_load_profiles_have_the_published_annual_energy_and_peak(
    name: str, annual_kwh: float, peak_kw: float
) -> None:
    profile = bundled_load_profile(name)
    assert profile.values.sum() == pytest.approx(annual_kwh, abs=0.5)  # rounded in PROVENANCE.md
    assert profile.values.max() == pytest.approx(peak_kw, abs=0.05)


def test_files_that_put_1_january_last_are_put_in_calendar_order() -> None:
    # Strip mall: the file starts at 01/02 01:00 (12.6... kW) and ends with 01/01.
    strip_mall = bundled_load_profile("doe-strip-mall")
    assert strip_mall.values[24] == pytest.approx(15.1211099652)  # 01/02 01:00 hour-ending


def test_all_fifteen_profiles_are_registered() -> None:
    assert len(LOAD_PROFILES) == 15
    with pytest.raises(UnknownNameError, match="known: doe-full-service-restaurant"):
        bundled_load_profile("hospital")


def test_boston_weather_matches_the_provenance_checks() -> None:
    weather = bundled_weather("boston-logan-tmy3")
    assert weather.ghi_w_per_m2.sum() / 1000 == pytest.approx(1407.8, abs=0.1)
    assert weather.temp_air_c.mean() == pytest.approx(10.6, abs=0.05)
    assert (weather.latitude_deg, weather.longitude_deg) == (42.37, -71.02)


@pytest.mark.parametrize("year", [2026, 2027, 2028])
def test_building_loads_follow_the_weekdays_of_any_year(year: int) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from lightson.domain.assets import Building
    from lightson.physics.profiles import building_load_kw

    school = Building(bundled_load_profile("doe-primary-school"))
    monday = datetime(year, 3, 8, 14, tzinfo=ZoneInfo("America/New_York"))
    monday -= timedelta(days=monday.weekday())
    week = building_load_kw(school, [monday + timedelta(days=d) for d in range(7)])
    assert week[:5].min() > 2 * week[5:].max()  # classes on weekdays, closed at weekends
