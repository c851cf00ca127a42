"""Reading typical-year hourly files: DOE/NREL load profiles (CSV) and TMY3 weather (EPW).

The vendored files and their provenance are in ``lightson/data`` (``PROVENANCE.md``).
Both kinds are hour-ending in local standard time (UTC−5); rows come back in calendar
order (two DOE files put 1 January last, so rows are sorted by month, day, hour).
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from lightson.domain.assets import HourlyProfile, HourlyWeather
from lightson.domain.errors import DataError
from lightson.domain.registry import Registry

_DATA = resources.files("lightson") / "data"
_DOE = "RefBldg{}New2004_v1.3_7.1_5A_USA_IL_CHICAGO-OHARE.csv"
_RESIDENTIAL = "USA_MA_Boston-Logan.Intl.AP.725090_TMY3_{}.csv"

LOAD_PROFILES: Registry[str] = Registry("load profile")
for _name, _file in {
    "residential-base": "residential/" + _RESIDENTIAL.format("BASE"),
    "residential-high": "residential/" + _RESIDENTIAL.format("HIGH"),
    "residential-low": "residential/" + _RESIDENTIAL.format("LOW"),
    "doe-primary-school": "commercial/" + _DOE.format("PrimarySchool"),
    "doe-secondary-school": "commercial/" + _DOE.format("SecondarySchool"),
    "doe-small-office": "commercial/" + _DOE.format("SmallOffice"),
    "doe-medium-office": "commercial/" + _DOE.format("MediumOffice"),
    "doe-large-office": "commercial/" + _DOE.format("LargeOffice"),
    "doe-stand-alone-retail": "commercial/" + _DOE.format("Stand-aloneRetail"),
    "doe-strip-mall": "commercial/" + _DOE.format("StripMall"),
    "doe-supermarket": "commercial/" + _DOE.format("SuperMarket"),
    "doe-quick-service-restaurant": "commercial/" + _DOE.format("QuickServiceRestaurant"),
    "doe-full-service-restaurant": "commercial/" + _DOE.format("FullServiceRestaurant"),
    "doe-warehouse": "commercial/" + _DOE.format("Warehouse"),
    "doe-midrise-apartment": "commercial/" + _DOE.format("MidriseApartment"),
}.items():
    LOAD_PROFILES.register(_name, "loads/" + _file)

WEATHER_FILES: Registry[str] = Registry("weather file")
WEATHER_FILES.register("boston-logan-tmy3", "weather/USA_MA_Boston-Logan.Intl.AP.725090_TMY3.epw")

_ELECTRICITY_COLUMN = "Electricity:Facility [kW](Hourly)"
# The OpenEI/EnergyPlus profiles follow a calendar whose 1 January is a Sunday (their low
# days are 1, 7-8, 14-15 January and Monday 16 January, MLK day 2006).
OPENEI_FIRST_WEEKDAY = 6


def bundled_load_profile(name: str, path: str = "") -> HourlyProfile:
    """A vendored load profile by name (``LOAD_PROFILES`` lists them)."""
    relative = LOAD_PROFILES.lookup(name, path)
    with resources.as_file(_DATA / relative) as file:
        return read_load_profile(file, name=name)


def bundled_weather(name: str, path: str = "") -> HourlyWeather:
    """Vendored typical-year weather by name (``WEATHER_FILES`` lists them)."""
    relative = WEATHER_FILES.lookup(name, path)
    with resources.as_file(_DATA / relative) as file:
        return read_epw_weather(file, name=name)


@lru_cache(maxsize=32)
def read_load_profile(path: Path, name: str = "") -> HourlyProfile:
    """Whole-facility electricity (kW) of an OpenEI/EnergyPlus hourly load CSV."""
    try:
        with Path(path).open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or _ELECTRICITY_COLUMN not in reader.fieldnames:
                raise DataError(f"{path}: no column '{_ELECTRICITY_COLUMN}'")
            rows = [
                (_month_day_hour(row["Date/Time"]), float(row[_ELECTRICITY_COLUMN]))
                for row in reader
            ]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: cannot read load profile ({error})") from error
    if len(rows) != 8760:
        raise DataError(f"{path}: expected 8760 hourly rows, found {len(rows)}")
    rows.sort(key=lambda row: row[0])
    values = np.array([kw for _, kw in rows], dtype=np.float64)
    return HourlyProfile(
        name=name or Path(path).stem,
        values=values,
        source=str(path),
        first_weekday=OPENEI_FIRST_WEEKDAY,
    )


def write_load_profile(path: Path, profile: HourlyProfile) -> None:
    """Write a profile as :func:`read_load_profile` reads it (the OpenEI layout: hour-ending
    ``Date/Time`` in local standard time, kW to the watt), on the OpenEI calendar (1 January a
    Sunday)."""
    if profile.first_weekday not in (None, OPENEI_FIRST_WEEKDAY):
        raise DataError(f"{path}: profile '{profile.name}' does not start on a Sunday")
    first = date(2023, 1, 1)  # a Sunday, not a leap year
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Date/Time", _ELECTRICITY_COLUMN])
        for row, kw in enumerate(profile.values):
            day = first + timedelta(days=row // 24)
            writer.writerow([f" {day:%m/%d}  {row % 24 + 1:02d}:00:00", f"{kw:.3f}"])


def _month_day_hour(stamp: str) -> tuple[int, int, int]:
    """`` 01/02  01:00:00`` (hour-ending 1..24) → (1, 2, 0) (hour-beginning 0..23)."""
    date_part, time_part = stamp.split()
    month, day = (int(x) for x in date_part.split("/"))
    return month, day, int(time_part.split(":")[0]) - 1


@lru_cache(maxsize=4)
def read_epw_weather(path: Path, name: str = "") -> HourlyWeather:
    """TMY3 weather from an EnergyPlus EPW file (``pvlib.iotools.read_epw``)."""
    import pvlib

    try:
        data, meta = pvlib.iotools.read_epw(str(path))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read EPW weather ({error})") from error
    if len(data) != 8760:
        raise DataError(f"{path}: expected 8760 hourly rows, found {len(data)}")

    def column(key: str) -> np.ndarray:
        return np.asarray(data[key].to_numpy(), dtype=np.float64)

    return HourlyWeather(
        name=name or Path(path).stem,
        latitude_deg=float(meta["latitude"]),
        longitude_deg=float(meta["longitude"]),
        altitude_m=float(meta["altitude"]),
        ghi_w_per_m2=column("ghi"),
        dni_w_per_m2=column("dni"),
        dhi_w_per_m2=column("dhi"),
        temp_air_c=column("temp_air"),
        wind_speed_m_per_s=column("wind_speed"),
        source=str(path),
    )
